//! Set-based statement builders shared by the projectors.

use sqlx::query_builder::Separated;
use sqlx::{MySql, MySqlConnection, QueryBuilder};

/// Rows per multi-row statement (keeps placeholders well under 65,535).
pub const CHUNK: usize = 1000;

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

/// `UPDATE <table> t JOIN (<rows as a derived table d(columns)>) d ON <on> SET <set>`,
/// in chunks: one statement updates many rows, each with its own values.
/// The derived table's first branch only names the columns.
pub async fn update_join<T>(
    conn: &mut MySqlConnection,
    table: &str,
    columns: &[&str],
    rows: &[T],
    on: &str,
    set: &str,
    bind: Binder<'_, T>,
) -> Result<(), sqlx::Error> {
    let header = columns.iter().map(|c| format!("NULL AS {c}")).collect::<Vec<_>>().join(", ");
    for chunk in rows.chunks(CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(format!("UPDATE {table} t JOIN (SELECT {header} FROM DUAL WHERE FALSE"));
        for item in chunk {
            q.push(" UNION ALL SELECT ");
            let mut values = q.separated(", ");
            bind(&mut values, item);
        }
        q.push(format!(") d ON {on} SET {set}"));
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
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
