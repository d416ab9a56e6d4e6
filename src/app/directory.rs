//! Checks that the users and postings a command refers to exist. Users and
//! postings are never deleted, so what was once found is remembered.

use std::collections::HashSet;
use std::sync::RwLock;

use crate::domain::posting::PostingAggregate;
use crate::domain::user::UserAggregate;
use crate::domain::{Aggregate, DomainError, FieldError, Reference};
use crate::event_store::EventReader;

use super::CommandError;

/// Existence checks against the directory streams, with a positive cache.
pub struct Directory {
    reader: EventReader,
    known: RwLock<HashSet<(&'static str, String)>>,
}

impl Directory {
    pub fn new(reader: EventReader) -> Self {
        Self { reader, known: RwLock::new(HashSet::new()) }
    }

    /// Answers 422-style field errors for every reference that does not exist.
    pub async fn check(&self, references: &[Reference]) -> Result<(), CommandError> {
        let wanted: Vec<(&'static str, String, &'static str)> = references
            .iter()
            .map(|r| match r {
                Reference::User { field, id } => (UserAggregate::STREAM_TYPE, id.to_string(), *field),
                Reference::Posting { field, id } => (PostingAggregate::STREAM_TYPE, id.to_string(), *field),
            })
            .collect();
        let unknown: Vec<&(&'static str, String, &'static str)> = {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            wanted.iter().filter(|(t, id, _)| !known.contains(&(*t, id.clone()))).collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let mut found = HashSet::new();
        for stream_type in [UserAggregate::STREAM_TYPE, PostingAggregate::STREAM_TYPE] {
            let ids: Vec<String> = unknown.iter().filter(|(t, _, _)| *t == stream_type).map(|(_, id, _)| id.clone()).collect();
            for id in self.reader.existing_streams(stream_type, &ids).await? {
                found.insert((stream_type, id));
            }
        }
        let errors: Vec<FieldError> = unknown
            .iter()
            .filter(|(t, id, _)| !found.contains(&(*t, id.clone())))
            .map(|(t, id, field)| FieldError::new(*field, format!("{t} {id} does not exist")))
            .collect();
        self.known.write().unwrap_or_else(|p| p.into_inner()).extend(found);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(errors).into())
        }
    }
}
