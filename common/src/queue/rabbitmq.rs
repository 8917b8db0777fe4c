//! PLACEHOLDER: the queue work replaces this file.

/// Not implemented yet.
pub struct RabbitQueue;
