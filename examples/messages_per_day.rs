//! An analytics consumer: replays the JetStream stream of chat events from the
//! start and prints how many messages were sent per conversation per day.
//!
//! ```sh
//! cargo run --example messages_per_day -- [NATS_URL] [STREAM] [SUBJECT_PREFIX]
//! # defaults: nats://127.0.0.1:4222 CHAT_EVENTS chat.events
//! ```
//!
//! It uses an ordered consumer (no state kept on the server) filtered on
//! `<prefix>.conversation.*.MessageSent`, and stops when it has caught up.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use futures::StreamExt;
use serde::Deserialize;

/// The fields of a published event this consumer needs.
#[derive(Deserialize)]
struct Event {
    stream_id: String,
    recorded_at: String,
}

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let stream_name = args.next().unwrap_or_else(|| "CHAT_EVENTS".into());
    let prefix = args.next().unwrap_or_else(|| "chat.events".into());

    let js = jetstream::new(async_nats::connect(url).await?);
    let stream = js.get_stream(&stream_name).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: format!("{prefix}.conversation.*.MessageSent"),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut consumer = consumer;
    let mut per_day: BTreeMap<(String, String), u64> = BTreeMap::new();
    let nothing_to_read = consumer.info().await?.num_pending == 0;
    let mut messages = consumer.messages().await?;
    while let Some(message) = if nothing_to_read { None } else { messages.next().await } {
        let message = message?;
        let event: Event = serde_json::from_slice(&message.payload)?;
        let day = event.recorded_at.get(..10).unwrap_or("?").to_owned();
        *per_day.entry((day, event.stream_id)).or_default() += 1;
        if message.info()?.pending == 0 {
            break; // caught up with the stream
        }
    }
    println!("day         conversation                          messages");
    for ((day, conversation), count) in per_day {
        println!("{day}  {conversation}  {count}");
    }
    Ok(())
}
