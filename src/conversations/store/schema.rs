//! The schema: portable SQL migrations (`migrations/`), run on start.

use super::{Result, Store};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "conversations",
        include_str!("../../../migrations/0001_conversations.sql"),
    ),
    (
        2,
        "settings and edits",
        include_str!("../../../migrations/0002_settings_and_edits.sql"),
    ),
    (
        3,
        "usage and checkpoints",
        include_str!("../../../migrations/0003_usage_and_checkpoints.sql"),
    ),
];

impl Store {
    pub(super) async fn migrate(&self) -> Result<()> {
        let migrations: Vec<Migration> = MIGRATIONS
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        let migrator = Migrator {
            migrations: Cow::Owned(migrations),
            ..Migrator::DEFAULT
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }
}
