//! Statements sent to the database as one: a [`Script`].
//!
//! sqlx runs each SQLite connection on a thread of its own, so every
//! statement is a hop there and back: a few context switches on each side.
//! Starting and ending one answer were eleven hops, and an answer at a
//! time cost the server 69 context switches (44 as scripts; `./dev bench`
//! prints the CPU). SQLite takes several statements in one query, so a
//! script is one hop there.
//! PostgreSQL's extended protocol takes one statement per query, so there a
//! script runs its statements one by one, as they were written.
//!
//! Invariants:
//! * Each statement is written, and binds its parameters (`$1`, `$2`, …),
//!   as if it ran alone; on SQLite its parameters are renumbered to follow
//!   the statements before it.
//! * The statements run in the order pushed, and the first that fails
//!   stops the script with its error (the caller's transaction then rolls
//!   back what ran).
//! * The same statements make the same query text, so SQLite prepares a
//!   script once per connection, as it does a statement.

use super::{Backend, Result};
use sqlx::{any::AnyArguments, error::BoxDynError, Arguments};

pub(super) struct Script<'q> {
    backend: Backend,
    /// SQLite: the statements so far, joined, and their parameters.
    joined: String,
    joined_args: AnyArguments<'q>,
    /// PostgreSQL: each statement with its own parameters.
    each: Vec<(&'q str, AnyArguments<'q>)>,
    /// The first binding that failed (it fails the script when run).
    failed: Option<BoxDynError>,
}

impl<'q> Script<'q> {
    pub(super) fn new(backend: Backend) -> Self {
        Self {
            backend,
            joined: String::new(),
            joined_args: AnyArguments::default(),
            each: Vec::new(),
            failed: None,
        }
    }

    /// Adds `sql`, whose parameters `bind` binds from `$1` on.
    pub(super) fn push(
        &mut self,
        sql: &'q str,
        bind: impl FnOnce(&mut AnyArguments<'q>) -> std::result::Result<(), BoxDynError>,
    ) {
        let bound = match self.backend {
            Backend::Sqlite => {
                renumber_into(&mut self.joined, sql, self.joined_args.len());
                self.joined.push_str(";\n");
                bind(&mut self.joined_args)
            }
            Backend::Postgres => {
                let mut args = AnyArguments::default();
                let bound = bind(&mut args);
                self.each.push((sql, args));
                bound
            }
        };
        if let Err(err) = bound {
            self.failed.get_or_insert(err);
        }
    }

    /// Runs the statements on `conn`, in the order pushed.
    pub(super) async fn execute(self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        if let Some(err) = self.failed {
            return Err(sqlx::Error::Encode(err).into());
        }
        match self.backend {
            Backend::Sqlite if self.joined.is_empty() => {}
            Backend::Sqlite => {
                sqlx::query_with(&self.joined, self.joined_args)
                    .execute(&mut *conn)
                    .await?;
            }
            Backend::Postgres => {
                for (sql, args) in self.each {
                    sqlx::query_with(sql, args).execute(&mut *conn).await?;
                }
            }
        }
        Ok(())
    }
}

impl Script<'_> {
    /// Runs the statements as a transaction of their own. On SQLite the
    /// `BEGIN` and `COMMIT` go in the same query: one hop in all, where a
    /// transaction of sqlx's would add one for each.
    pub(super) async fn commit_alone(self, pool: &sqlx::AnyPool) -> Result<()> {
        // (A script that could not be bound fails in `execute`.)
        if self.backend == Backend::Postgres || self.failed.is_some() {
            let mut tx = pool.begin().await?;
            self.execute(&mut tx).await?;
            tx.commit().await?;
            return Ok(());
        }
        let mut conn = pool.acquire().await?;
        let transaction = format!("BEGIN;\n{}COMMIT;", self.joined);
        let ran = sqlx::query_with(&transaction, self.joined_args)
            .execute(&mut *conn)
            .await;
        if let Err(err) = ran {
            // Undo what ran. sqlx does not know of this transaction, so
            // should that fail the connection is closed rather than given
            // to its next user inside it.
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                conn.close_on_drop();
            }
            return Err(err.into());
        }
        Ok(())
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
    use super::renumber_into;

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
