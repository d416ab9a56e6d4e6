//! Set-based statement builders shared by the projectors.

use sqlx::query_builder::Separated;
use sqlx::{MySql, MySqlConnection, QueryBuilder};

/// Rows per multi-row statement (keeps placeholders well under 65,535).
pub const CHUNK: usize = 1000;
/// Keys per CASE update: every updated row scans the CASE's branches, so
/// smaller statements cost less in all (fewer comparisons per row).
pub const CASE_CHUNK: usize = 100;

/// How a projector binds one row's values.
pub type Binder<'r, T> = &'r (dyn Fn(&mut Separated<'_, '_, MySql, &'static str>, &T) + Sync);

/// `INSERT INTO <table> (<columns>) VALUES (...), (...) <suffix>`, in chunks.
pub async fn insert_rows<T>(
    conn: &mut MySqlConnection,
    table: &str,
    columns: &str,
    rows: &[T],
    suffix: &str,
    bind: Binder<'_, T>,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(format!("INSERT INTO {table} ({columns}) "));
        q.push_values(chunk, |mut row, item| bind(&mut row, item));
        q.push(suffix);
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Appends `CASE <key> WHEN ? THEN ? ... ELSE <otherwise> END`: one value per
/// key, so one UPDATE can give many rows each their own value (cheaper for
/// the server to parse and plan than a derived table of UNIONs).
pub fn push_case<'a, K, V>(q: &mut QueryBuilder<'a, MySql>, key: &str, pairs: impl IntoIterator<Item = (K, V)>, otherwise: &str)
where
    K: 'a + sqlx::Encode<'a, MySql> + sqlx::Type<MySql> + Send,
    V: 'a + sqlx::Encode<'a, MySql> + sqlx::Type<MySql> + Send,
{
    q.push("CASE ").push(key);
    for (k, v) in pairs {
        q.push(" WHEN ").push_bind(k).push(" THEN ").push_bind(v);
    }
    q.push(" ELSE ").push(otherwise).push(" END");
}

/// Appends ` IN (?, ?, ...)` with `values` bound.
pub fn push_in<'a, T>(q: &mut QueryBuilder<'a, MySql>, values: impl IntoIterator<Item = T>)
where
    T: 'a + sqlx::Encode<'a, MySql> + sqlx::Type<MySql> + Send,
{
    q.push(" IN (");
    let mut list = q.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    q.push(")");
}

/// A time before every event, to compare a nullable time column with GREATEST.
pub const EPOCH: &str = "TIMESTAMP '1970-01-01 00:00:01'";
