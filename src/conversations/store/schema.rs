//! The schema: portable SQL migrations (`migrations/`, the same files for
//! SQLite and PostgreSQL), built into the binary and run on start.

use super::{Result, Store};

impl Store {
    pub(super) async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }
}
