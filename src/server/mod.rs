//! The S3-facing server: the listener, the request pipeline ([`stack`]), and the
//! response edge (error rendering, upstream-error sanitising, byte counting).

mod account;
pub mod body_guard;
pub mod browser;
pub mod client_ip;
mod conn_guard;
pub mod form;
pub mod head_check;
pub mod listener;
mod post_object;
pub mod quota_step;
pub mod response;
mod special;
pub mod stack;
pub mod state;

pub use stack::handle;
pub use state::ProxyState;
