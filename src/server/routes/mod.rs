//! The API's handlers: the chat streams and resume/stop
//! ([`chat`]), and the conversation endpoints ([`conversations`]). Each
//! takes typed parts of the request ([`super::extract`]) and answers with
//! JSON, an event stream, or an [`super::ApiError`].

pub mod chat;
pub mod conversations;
pub mod ops;
