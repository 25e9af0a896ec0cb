//! What the LDAP view reads of a store, on every backend: one consistent read of the whole
//! directory (every connection), a marker that moves when a run applies, and the POSIX numbers
//! (uidNumber/gidNumber) that are allocated once per object and never change or get reused.

use std::collections::HashMap;

use crate::sqlite::{DirectoryLinks, PosixKey};
use crate::types::{StoredGroup, StoredPhoto, StoredUser};
use crate::{SqliteStore, Store, StoreError};

/// One consistent read of the whole directory: everything in it comes from the same state of
/// the store (a run applied meanwhile is wholly visible or not at all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectoryRead {
    /// [`DirectoryStore::applied_marker`] at the time of the read.
    pub marker: (i64, i64),
    /// Users of every connection, as [`Store::users`] orders them.
    pub users: Vec<StoredUser>,
    /// Groups of every connection, as [`Store::groups`] orders them.
    pub groups: Vec<StoredGroup>,
    /// Every membership of every connection.
    pub links: DirectoryLinks,
    /// The POSIX number of every object that has one (when asked for).
    pub posix: HashMap<PosixKey, u32>,
    /// The stored photo of each active user that has its bytes, by connection (when asked for).
    pub photos: Vec<(String, StoredPhoto)>,
}

/// A store the LDAP view can serve from: SQLite and PostgreSQL alike.
pub trait DirectoryStore: Store {
    /// Read the whole directory in one read transaction; `posix`: with the POSIX numbers,
    /// `photos`: with the photos of active users.
    fn read_directory(&self, posix: bool, photos: bool) -> Result<DirectoryRead, StoreError>;

    /// A value that changes whenever a run applies changes (count and newest end of applied
    /// runs): a reader holding a copy of the directory reloads it when this changes.
    fn applied_marker(&self) -> Result<(i64, i64), StoreError>;

    /// Give each of `wanted` a POSIX number unless it has one (one transaction); returns how
    /// many were allocated. Numbers come from one sequence for users and groups, in the order of
    /// `wanted`; an existing number never changes, and a number is never handed out twice, even
    /// after its object (or its row) is gone.
    fn allocate_posix_ids(&mut self, wanted: &[PosixKey]) -> Result<usize, StoreError>;
}

impl DirectoryStore for SqliteStore {
    fn read_directory(&self, posix: bool, photos: bool) -> Result<DirectoryRead, StoreError> {
        self.read_consistent(|s| {
            let mut read = DirectoryRead {
                marker: SqliteStore::applied_marker(s)?,
                users: s.users(None)?,
                groups: s.groups(None)?,
                links: s.all_links()?,
                ..DirectoryRead::default()
            };
            if posix {
                read.posix = s.posix_ids()?;
            }
            if photos {
                for u in read.users.iter().filter(|u| u.active) {
                    if let Some(p) = s.photo(&u.connection, &u.provider_id)? {
                        if p.bytes.is_some() {
                            read.photos.push((u.connection.clone(), p));
                        }
                    }
                }
            }
            Ok(read)
        })
    }

    fn applied_marker(&self) -> Result<(i64, i64), StoreError> {
        SqliteStore::applied_marker(self)
    }

    fn allocate_posix_ids(&mut self, wanted: &[PosixKey]) -> Result<usize, StoreError> {
        SqliteStore::allocate_posix_ids(self, wanted)
    }
}
