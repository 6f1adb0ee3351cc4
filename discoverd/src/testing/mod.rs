//! Test support shared by unit tests, integration tests, the end-to-end
//! crate and benchmarks (cargo feature `testing`; never in the product).

pub mod fake_ironic;

pub use fake_ironic::{Call, FakeIronic, Fault};
