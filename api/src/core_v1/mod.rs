//! The core group, `apiVersion: v1`.

mod config;
mod event;
mod namespace;
mod pod;
mod service;

pub use config::*;
pub use event::*;
pub use namespace::*;
pub use pod::*;
pub use service::*;
