//! The write pipeline between the receivers and storage.

pub mod buffer;

pub use buffer::{BufferConfig, MemoryWriteBuffer};
