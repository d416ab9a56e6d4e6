//! One publisher at a time across processes: a MySQL named lock, held on a
//! dedicated connection for as long as this process publishes.

use sqlx::{Connection, MySqlConnection, MySqlPool};

/// The held publisher lock; released when dropped (its connection closes).
pub struct Leader {
    connection: MySqlConnection,
}

impl Leader {
    /// Takes the lock if free; `None` if another process holds it.
    pub async fn acquire(pool: &MySqlPool) -> Result<Option<Self>, sqlx::Error> {
        let mut connection = pool.acquire().await?.detach();
        let got: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(CONCAT('chat-publisher:', DATABASE()), 0)").fetch_one(&mut connection).await?;
        if got == Some(1) {
            Ok(Some(Self { connection }))
        } else {
            let _ = connection.close().await;
            Ok(None)
        }
    }

    /// Fails if the lock's connection is gone (then the lock is too).
    pub async fn check(&mut self) -> Result<(), sqlx::Error> {
        self.connection.ping().await
    }
}
