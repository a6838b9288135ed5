//! What is counted: an [`Endpoint`] is a [`Method`] and a [`Path`].

mod endpoint;
mod method;
mod path;

pub use endpoint::Endpoint;
pub use method::Method;
pub use path::Path;
