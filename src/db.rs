//! The database connection: create it if missing, pool it, migrate it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, MySql, MySqlPool};

/// Database setup failures.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Creates the database if needed and applies pending migrations.
pub async fn migrate(database_url: &str) -> Result<(), DbError> {
    if !MySql::database_exists(database_url).await? {
        MySql::create_database(database_url).await?;
    }
    let pool = connect(database_url, 2).await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// A pool that fails fast when the database is down.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<MySqlPool, DbError> {
    let options = MySqlConnectOptions::from_str(database_url)?.disable_statement_logging();
    let pool = MySqlPoolOptions::new()
        .max_connections(max_connections.max(2))
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await?;
    Ok(pool)
}
