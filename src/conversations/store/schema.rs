//! The schema: portable SQL migrations (`migrations/`, the same files for
//! SQLite and PostgreSQL), built into the binary and run on start.

use super::{rows::scalar_i64, Result, Store, StoreError, StoreErrorKind};
use sqlx::migrate::Migrator;

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

impl Store {
    pub(super) async fn migrate(&self) -> Result<()> {
        MIGRATIONS.run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers and holds every migration this server
    /// knows (for `/readyz`): another instance may have started on an older
    /// schema, or someone may have restored an old backup.
    pub async fn check_ready(&self) -> Result<()> {
        let rows = sqlx::query("SELECT COUNT(*) AS applied FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await?;
        let applied = scalar_i64(rows, "applied")?;
        let known = MIGRATIONS.iter().count() as i64;
        if applied < known {
            return Err(StoreError::new(
                StoreErrorKind::Internal,
                format!("the database schema has {applied} of this server's {known} migrations"),
            ));
        }
        Ok(())
    }
}
