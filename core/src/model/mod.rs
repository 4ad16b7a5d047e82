//! Talking to models: the wire formats, the retry policy and the pool of helper threads that
//! make the HTTP calls. Nothing here calls PostgreSQL. A provider is one file that defines a
//! [`Provider`] and one line in [`PROVIDERS`].

pub mod anthropic;
pub mod http;
pub mod openai_chat;
pub mod openai_error;
pub mod openai_responses;
pub mod pool;
pub mod retry;
pub mod sanitize;
pub mod wire;

pub use wire::{Endpoint, HttpRequest, HttpResponse, ParseFn, Provider};

/// Every wire format, by its `models.provider` name.
pub const PROVIDERS: [Provider; 3] = [
    openai_chat::PROVIDER,
    openai_responses::PROVIDER,
    anthropic::PROVIDER,
];

/// The provider called `name`.
pub fn provider(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// The provider names, in registry order (for error hints and the models table's check).
pub fn provider_names() -> Vec<&'static str> {
    PROVIDERS.iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_is_found_by_its_own_name() {
        for p in &PROVIDERS {
            assert_eq!(provider(p.name).map(|q| q.name), Some(p.name));
        }
        assert!(provider("openai").is_none());
        let mut names = provider_names();
        names.dedup();
        assert_eq!(names.len(), PROVIDERS.len());
    }
}
