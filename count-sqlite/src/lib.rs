//! `SqliteCounter`: count-core's `Counter` contract on SQLite (being written).
