//! Test doubles (feature `testing`): [`FakeContainerStats`], a scripted
//! [`ContainerStatsSource`].

use std::sync::{Arc, Mutex, PoisonError};

use crate::container::{ContainerSample, ContainerStatsSource};

/// Returns whatever samples it was last given; clones share them, so a test keeps one clone to
/// change what the collector it registered sees at the next scrape.
#[derive(Debug, Clone, Default)]
pub struct FakeContainerStats {
    samples: Arc<Mutex<Vec<ContainerSample>>>,
}

impl FakeContainerStats {
    pub fn new(samples: Vec<ContainerSample>) -> Self {
        Self {
            samples: Arc::new(Mutex::new(samples)),
        }
    }

    /// Replaces the samples the next scrape sees.
    pub fn set(&self, samples: Vec<ContainerSample>) {
        *self.samples.lock().unwrap_or_else(PoisonError::into_inner) = samples;
    }
}

impl ContainerStatsSource for FakeContainerStats {
    fn containers(&self) -> Vec<ContainerSample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
