//! Statements sent to the database as one: a [`Script`].
//!
//! Every statement is a round trip: on PostgreSQL over the network, on
//! SQLite to the thread sqlx runs each connection on (a few context
//! switches on each side). Starting and ending one answer were eleven of
//! them. A script sends its statements as one query:
//! * on SQLite, joined by `;` (SQLite takes several statements in one
//!   query);
//! * on PostgreSQL, as one statement, each in a `WITH` of its own
//!   (its extended protocol takes one statement per query). One statement
//!   is atomic without a transaction, and foreign keys between its parts
//!   are checked once all of them have run.
//!
//! Invariants:
//! * Each statement is written, and binds its parameters (`$1`, `$2`, …),
//!   as if it ran alone; in the script its parameters are renumbered to
//!   follow the statements before it.
//! * No statement reads what another of the same script writes: on
//!   PostgreSQL they all read the database as it was before the script.
//! * The statements run in the order pushed, and one that fails fails the
//!   script (the caller's transaction then rolls back what ran).
//! * The same statements make the same query text, so the database
//!   prepares a script once per connection, as it does a statement.

use super::{Backend, Result};
use sqlx::{any::AnyArguments, error::BoxDynError, Arguments};

pub(super) struct Script<'q> {
    backend: Backend,
    /// The statements so far, each renumbered to follow those before it.
    statements: Vec<String>,
    args: AnyArguments<'q>,
    /// The first binding that failed (it fails the script when run).
    failed: Option<BoxDynError>,
}

impl<'q> Script<'q> {
    pub(super) fn new(backend: Backend) -> Self {
        Self {
            backend,
            statements: Vec::new(),
            args: AnyArguments::default(),
            failed: None,
        }
    }

    /// Adds `sql`, whose parameters `bind` binds from `$1` on.
    pub(super) fn push(
        &mut self,
        sql: &str,
        bind: impl FnOnce(&mut AnyArguments<'q>) -> std::result::Result<(), BoxDynError>,
    ) {
        let mut statement = String::with_capacity(sql.len() + 8);
        renumber_into(&mut statement, sql, self.args.len());
        self.statements.push(statement);
        if let Err(err) = bind(&mut self.args) {
            self.failed.get_or_insert(err);
        }
    }

    /// The query that runs the statements (none for no statement).
    fn query(&self) -> Option<String> {
        match (self.backend, self.statements.as_slice()) {
            (_, []) => None,
            (_, [statement]) => Some(statement.clone()),
            (Backend::Sqlite, statements) => Some(statements.join(";\n")),
            (Backend::Postgres, statements) => {
                let parts: Vec<String> = statements
                    .iter()
                    .enumerate()
                    .map(|(n, statement)| format!("s{n} AS ({statement})"))
                    .collect();
                Some(format!("WITH {} SELECT 1", parts.join(", ")))
            }
        }
    }

    /// Runs the statements on `conn` (inside the caller's transaction).
    pub(super) async fn execute(self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        if let Some(err) = self.failed {
            return Err(sqlx::Error::Encode(err).into());
        }
        if let Some(query) = self.query() {
            sqlx::query_with(&query, self.args).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Runs the statements as a transaction of their own, in one round
    /// trip: on PostgreSQL one statement is one already; on SQLite the
    /// `BEGIN` and `COMMIT` go in the same query (a transaction of sqlx's
    /// would add a round trip for each).
    pub(super) async fn commit_alone(self, pool: &sqlx::AnyPool) -> Result<()> {
        let mut conn = pool.acquire().await?;
        if self.backend == Backend::Postgres || self.statements.len() < 2 || self.failed.is_some() {
            return self.execute(&mut conn).await;
        }
        let statements = self.query().expect("two statements or more");
        // sqlx does not know of this transaction: until it has ended, the
        // connection must not go back to the pool inside it.
        let mut unsettled = Unsettled(Some(conn));
        let conn = unsettled.0.as_mut().expect("held until settled");
        let transaction = format!("BEGIN;\n{statements};\nCOMMIT");
        let ran = sqlx::query_with(&transaction, self.args)
            .execute(&mut **conn)
            .await;
        if let Err(err) = ran {
            // Undo what ran; should that fail, the connection is closed.
            if sqlx::query("ROLLBACK").execute(&mut **conn).await.is_ok() {
                unsettled.settled();
            }
            return Err(err.into());
        }
        unsettled.settled();
        Ok(())
    }
}

/// A pooled connection that may be inside a transaction sqlx does not know
/// of. Dropped before [`Unsettled::settled`] (the script failed and could
/// not be rolled back, or its future was dropped midway), it is closed
/// rather than given back, and SQLite rolls back what it held.
struct Unsettled(Option<sqlx::pool::PoolConnection<sqlx::Any>>);

impl Unsettled {
    /// The transaction has ended: the connection goes back to the pool.
    fn settled(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// Appends `sql` to `out` with each parameter `$n` made `$(n + offset)`.
/// Text in single quotes (a string literal) is copied as it is.
fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    let mut in_literal = false;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\'' => {
                in_literal = !in_literal;
                out.push(c);
            }
            '$' if !in_literal => {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                match rest[..digits].parse::<usize>() {
                    Ok(n) => {
                        out.push('$');
                        out.push_str(&(n + offset).to_string());
                        rest = &rest[digits..];
                    }
                    Err(_) => out.push(c),
                }
            }
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{renumber_into, Backend, Script};
    use sqlx::Arguments;

    fn two_statements(backend: Backend) -> Script<'static> {
        let mut script = Script::new(backend);
        script.push("UPDATE a SET x = $1 WHERE id = $2", |args| {
            args.add(1_i64)?;
            args.add("one")
        });
        script.push("INSERT INTO b (id) VALUES ($1)", |args| args.add("two"));
        script
    }

    /// A lone SQLite script runs its own `BEGIN` and `COMMIT`. Its future
    /// dropped while the script waits for the database's write lock must
    /// not put the connection back in the pool inside that transaction:
    /// what the pool's next user writes would then never be committed.
    #[tokio::test]
    async fn a_sqlite_script_dropped_midway_leaves_no_transaction_in_the_pool() {
        use sqlx::{any::AnyPoolOptions, Connection};
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("store.db").display());
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        // Another connection holds the write lock: the script waits inside
        // its transaction, after its BEGIN.
        let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
        let mut script = Script::new(Backend::Sqlite);
        script.push("INSERT INTO t (n) VALUES ($1)", |args| args.add(1_i64));
        script.push("INSERT INTO t (n) VALUES ($1)", |args| args.add(2_i64));
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(300), script.commit_alone(&pool)).await;
        assert!(
            waited.is_err(),
            "the script should have been waiting for the lock"
        );
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();

        // The pool's next user writes, and the write is committed.
        sqlx::query("INSERT INTO t (n) VALUES (3)")
            .execute(&pool)
            .await
            .unwrap();
        let seen: Vec<i64> = sqlx::query_scalar("SELECT n FROM t WHERE n = 3")
            .fetch_all(&mut other)
            .await
            .unwrap();
        assert_eq!(
            seen,
            vec![3],
            "a write through the pool after the dropped script is not committed"
        );
        // The script ran whole or not at all.
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t WHERE n < 3 ORDER BY n")
            .fetch_all(&mut other)
            .await
            .unwrap();
        assert!(rows.is_empty() || rows == vec![1, 2], "{rows:?}");
    }

    #[test]
    fn sqlite_gets_the_statements_joined() {
        assert_eq!(
            two_statements(Backend::Sqlite).query().unwrap(),
            "UPDATE a SET x = $1 WHERE id = $2;\nINSERT INTO b (id) VALUES ($3)"
        );
    }

    #[test]
    fn postgresql_gets_one_statement_of_them() {
        assert_eq!(
            two_statements(Backend::Postgres).query().unwrap(),
            "WITH s0 AS (UPDATE a SET x = $1 WHERE id = $2), s1 AS (INSERT INTO b (id) VALUES ($3)) SELECT 1"
        );
        let mut alone = Script::new(Backend::Postgres);
        alone.push("DELETE FROM c WHERE id = $1", |args| args.add("three"));
        assert_eq!(alone.query().unwrap(), "DELETE FROM c WHERE id = $1");
        assert_eq!(Script::new(Backend::Postgres).query(), None);
    }

    fn renumbered(sql: &str, offset: usize) -> String {
        let mut out = String::new();
        renumber_into(&mut out, sql, offset);
        out
    }

    #[test]
    fn parameters_follow_the_statements_before() {
        assert_eq!(
            renumbered("UPDATE t SET a = $1, b = $12 WHERE id = $2", 15),
            "UPDATE t SET a = $16, b = $27 WHERE id = $17"
        );
        assert_eq!(renumbered("SELECT $1", 0), "SELECT $1");
    }

    #[test]
    fn literals_and_lone_dollars_are_kept() {
        assert_eq!(
            renumbered("SELECT '$1 é', $1, 'it''s $2', $ FROM t WHERE x = $3", 4),
            "SELECT '$1 é', $5, 'it''s $2', $ FROM t WHERE x = $7"
        );
    }
}
