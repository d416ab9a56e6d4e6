//! Command bodies as the HTTP edge decodes them (`chat::http::decode_command_body`:
//! JSON decoding, then each route's field validation, then the creation
//! rules). Any bytes must answer Ok or an error, never panic.
//!
//! Input: one byte choosing the route (`'0'` to `'9'` in the corpus, any byte
//! modulo the number of routes), then the body.

#![no_main]

use chat::domain::UserId;
use chat::http::{decode_command_body, CommandBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let route = CommandBody::ALL[usize::from(selector.wrapping_sub(b'0')) % CommandBody::ALL.len()];
    let Some(caller) = UserId::new(1) else {
        return;
    };
    let _ = decode_command_body(route, body, caller);
});
