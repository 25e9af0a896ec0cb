//! The directory store: SQLite by default, migrations, run history.
