//! What a sync knows of the inventory of one target and type, to compare its listings with:
//! per image, its key hash, what the store holds (row id, content hash, deleted or not), and
//! which listing of this sync showed it first.
//!
//! A full listing looks up every image of the type, a million at the largest accounts, so
//! the layout is chosen for that lookup.
//! - The entries are kept in the order the store hands them out (row order), and the images
//!   this sync inserts are appended. HSS lists in a stable order and a first sync inserted
//!   the rows in that order, so a listing mostly asks for the entry right after the one it
//!   asked for last: that entry is compared first, a sequential read, before the hash
//!   index's random one, which missed the CPU cache on nearly every image.
//! - The hash index holds only 32-bit positions in the entries: 5 bytes a slot, where a map
//!   holding the entries themselves took 25.
//!
//! Whatever order HSS lists in, every lookup is answered right: the order only decides
//! whether the first comparison spares the probe.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

use crate::store::{KnownImage, StoreError};

/// The inventory index of one sync (see the module's documentation).
pub(super) struct KnownImages {
    /// Key hash and what is known: the store's rows in row order, then the images this sync
    /// inserts, in the order it listed them.
    entries: Vec<(i64, Known)>,
    /// Positions in `entries`, by key hash.
    by_key: HashTable<u32>,
    /// Seeded per process, as std's maps are: key hashes are computed from what HSS lists,
    /// so their low bits must not pick the slots.
    hasher: DefaultHashBuilder,
    /// The entry a lookup compares first: the one after the last found.
    next: usize,
}

impl KnownImages {
    /// An empty index, filled as the sync goes (an incremental listing, or a first sync).
    pub(super) fn new() -> KnownImages {
        KnownImages {
            entries: Vec::new(),
            by_key: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            next: 0,
        }
    }

    /// The index of everything the store holds of a target and type, in the store's order.
    pub(super) fn from_stored(stored: Vec<(i64, KnownImage)>) -> Result<KnownImages, StoreError> {
        // Converted in place, so the store's list is never held beside a copy of itself, then
        // given back the 8 bytes an entry saves (a remap, not a copy, at these sizes).
        let mut entries = stored
            .into_iter()
            .map(|(key, k)| Known::stored(k.row_id, k.content_hash, k.deleted).map(|k| (key, k)))
            .collect::<Result<Vec<_>, _>>()?;
        entries.shrink_to_fit();
        positions_fit(entries.len())?;
        let hasher = DefaultHashBuilder::default();
        // Sized once, so the table never grows (and rehashes) while it is filled.
        let mut by_key = HashTable::with_capacity(entries.len());
        for (at, (key, _)) in entries.iter().enumerate() {
            by_key.insert_unique(hasher.hash_one(*key), at as u32, |&i| {
                hasher.hash_one(entries[i as usize].0)
            });
        }
        Ok(KnownImages {
            entries,
            by_key,
            hasher,
            next: 0,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Room for `additional` more images without growing.
    pub(super) fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_key
            .reserve(additional, |&at| hasher.hash_one(entries[at as usize].0));
    }

    pub(super) fn contains(&self, key: i64) -> bool {
        self.position(key).is_some()
    }

    /// The image with this key hash, if the index has it.
    pub(super) fn find(&mut self, key: i64) -> Option<&mut Known> {
        let at = match self.entries.get(self.next) {
            Some((next_key, _)) if *next_key == key => self.next,
            _ => self.position(key)?,
        };
        self.next = at + 1;
        Some(&mut self.entries[at].1)
    }

    /// Adds what the store holds of an image the index does not have yet.
    pub(super) fn insert_stored(&mut self, key: i64, image: KnownImage) -> Result<(), StoreError> {
        let known = Known::stored(image.row_id, image.content_hash, image.deleted)?;
        self.push(key, known)
    }

    /// Adds an image the index does not have, which this sync inserts, listed first by
    /// `listing`.
    pub(super) fn insert_new(
        &mut self,
        key: i64,
        content_hash: i64,
        listing: u8,
    ) -> Result<(), StoreError> {
        self.push(key, Known::inserted(content_hash, listing))
    }

    /// How many images the store holds present (neither deleted nor inserted by this sync).
    pub(super) fn present(&self) -> usize {
        self.entries
            .iter()
            .filter(|(_, k)| k.row_id().is_some() && !k.deleted())
            .count()
    }

    /// The rows of present images that no listing of this sync showed.
    pub(super) fn unlisted(&self) -> Vec<i64> {
        self.entries
            .iter()
            .filter(|(_, k)| k.listed_in() == 0 && !k.deleted())
            .filter_map(|(_, k)| k.row_id())
            .collect()
    }

    fn position(&self, key: i64) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.by_key
            .find(hash, |&at| self.entries[at as usize].0 == key)
            .map(|&at| at as usize)
    }

    fn push(&mut self, key: i64, known: Known) -> Result<(), StoreError> {
        let at = self.entries.len();
        positions_fit(at + 1)?;
        self.entries.push((key, known));
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_key
            .insert_unique(hasher.hash_one(key), at as u32, |&i| {
                hasher.hash_one(entries[i as usize].0)
            });
        Ok(())
    }
}

/// Positions are 32-bit: 4 billion images of one type would take 100 GB of index first.
fn positions_fit(entries: usize) -> Result<(), StoreError> {
    if u32::try_from(entries).is_err() {
        return Err(StoreError::Corrupt {
            what: "an inventory of 2^32 images or more of one type",
        });
    }
    Ok(())
}

/// What the store had of one image, and which of this sync's listings showed it first.
///
/// 16 bytes, since a full sync holds one per image of the type: with its key, 24 bytes an
/// image rather than the 32 of the store's row with its padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Known {
    content_hash: i64,
    /// The row id (0 for an image this sync inserted) shifted above 8 bits of flags: bit 7
    /// set if the row is marked deleted, bits 0-6 the number of the listing (window) that
    /// listed it, 0 if none did yet.
    packed: u64,
}

impl Known {
    const DELETED: u64 = 0x80;
    const LISTING: u64 = 0x7f;
    /// Row ids are positive and below 2^55 (36 quadrillion rows); anything else is not a
    /// row this store wrote.
    const MAX_ROW_ID: i64 = (1 << 55) - 1;

    fn stored(row_id: i64, content_hash: i64, deleted: bool) -> Result<Known, StoreError> {
        if !(1..=Self::MAX_ROW_ID).contains(&row_id) {
            return Err(StoreError::Corrupt {
                what: "an image row id of the inventory index",
            });
        }
        let deleted = if deleted { Self::DELETED } else { 0 };
        Ok(Known {
            content_hash,
            packed: (row_id as u64) << 8 | deleted,
        })
    }

    /// An image this sync inserts, listed first by `listing`.
    fn inserted(content_hash: i64, listing: u8) -> Known {
        Known {
            content_hash,
            packed: u64::from(listing) & Self::LISTING,
        }
    }

    pub(super) fn content_hash(self) -> i64 {
        self.content_hash
    }

    /// `None` for an image this sync inserted.
    pub(super) fn row_id(self) -> Option<i64> {
        let row_id = (self.packed >> 8) as i64;
        (row_id != 0).then_some(row_id)
    }

    pub(super) fn deleted(self) -> bool {
        self.packed & Self::DELETED != 0
    }

    /// 0: not listed yet; else the number of the listing (window) that listed it.
    pub(super) fn listed_in(self) -> u8 {
        (self.packed & Self::LISTING) as u8
    }

    pub(super) fn set_listed_in(&mut self, listing: u8) {
        self.packed = self.packed & !Self::LISTING | u64::from(listing) & Self::LISTING;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(row_id: i64, content_hash: i64, deleted: bool) -> KnownImage {
        KnownImage {
            row_id,
            content_hash,
            deleted,
        }
    }

    /// Keys 100, 101, … for rows 1, 2, …; every third deleted.
    fn index(rows: i64) -> KnownImages {
        let stored = (1..=rows)
            .map(|row| (99 + row, stored(row, -row, row % 3 == 0)))
            .collect();
        KnownImages::from_stored(stored).expect("valid rows")
    }

    #[test]
    fn every_image_is_found_in_whatever_order_it_is_asked_for() {
        let orders: [Vec<i64>; 3] = [
            (100..1100).collect(),
            (100..1100).rev().collect(),
            // Every 7th key, then the rest: the cursor jumps, then resumes.
            (0..7)
                .flat_map(|start| (100 + start..1100).step_by(7))
                .collect(),
        ];
        for order in orders {
            let mut known = index(1000);
            for &key in &order {
                let entry = known.find(key).expect("a stored key");
                let row = key - 99;
                assert_eq!(
                    (entry.row_id(), entry.content_hash(), entry.deleted()),
                    (Some(row), -row, row % 3 == 0)
                );
            }
            assert!(known.find(99).is_none() && known.find(1100).is_none());
        }
    }

    #[test]
    fn listing_marks_stay_with_their_image_and_decide_what_vanished() {
        let mut known = index(9);
        assert_eq!(known.present(), 6, "rows 3, 6, 9 are deleted");
        known.find(101).expect("row 2").set_listed_in(1);
        known.find(104).expect("row 5").set_listed_in(2);
        assert_eq!(known.find(101).expect("row 2").listed_in(), 1);
        assert_eq!(known.find(104).expect("row 5").listed_in(), 2);
        assert_eq!(known.find(100).expect("row 1").listed_in(), 0);
        assert_eq!(known.unlisted(), vec![1, 4, 7, 8]);
    }

    #[test]
    fn images_added_during_the_sync_are_found_and_never_vanish() {
        let mut known = index(3);
        known.reserve(10);
        known.insert_new(500, 77, 1).expect("room");
        known
            .insert_stored(600, stored(40, 8, false))
            .expect("a valid row");
        assert_eq!(known.len(), 5);
        assert!(known.contains(500) && known.contains(600) && !known.contains(700));
        let new = known.find(500).expect("inserted");
        assert_eq!(
            (new.row_id(), new.content_hash(), new.listed_in()),
            (None, 77, 1)
        );
        assert_eq!(known.find(600).expect("looked up").row_id(), Some(40));
        assert_eq!(known.present(), 3, "rows 1, 2 and 40");
        assert_eq!(known.unlisted(), vec![1, 2, 40]);
    }

    #[test]
    fn a_known_image_packs_into_16_bytes_and_reads_back_as_stored() {
        assert_eq!(std::mem::size_of::<Known>(), 16);
        assert_eq!(std::mem::size_of::<(i64, Known)>(), 24);
        for (row, hash, deleted) in [
            (1, -1, false),
            (42, i64::MIN, true),
            (Known::MAX_ROW_ID, 7, true),
        ] {
            let mut k = Known::stored(row, hash, deleted).expect("a valid row");
            assert_eq!(
                (k.row_id(), k.content_hash(), k.deleted()),
                (Some(row), hash, deleted)
            );
            assert_eq!(k.listed_in(), 0);
            k.set_listed_in(3);
            assert_eq!(
                (k.row_id(), k.deleted(), k.listed_in()),
                (Some(row), deleted, 3)
            );
        }
        let new = Known::inserted(9, 2);
        assert_eq!(
            (new.row_id(), new.deleted(), new.listed_in()),
            (None, false, 2)
        );
    }

    #[test]
    fn a_row_id_the_store_cannot_have_written_is_an_error_not_another_row() {
        for row in [0, -5, Known::MAX_ROW_ID + 1, i64::MAX] {
            assert!(KnownImages::from_stored(vec![(1, stored(row, 1, false))]).is_err());
            assert!(
                KnownImages::new()
                    .insert_stored(1, stored(row, 1, false))
                    .is_err()
            );
        }
    }
}
