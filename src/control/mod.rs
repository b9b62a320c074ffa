//! The control API's building blocks: AK/SK request signatures and the durable store.

pub mod sign;
pub mod store;
