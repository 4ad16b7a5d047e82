//! What a model call cost: per-model prices applied to the usage the provider reported.

use crate::vocab::Usage;

/// A model's prices in currency units (the registry says USD) per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prices {
    pub input: f64,
    /// Input tokens served from the provider's prompt cache; usually a fraction of `input`.
    pub cached_input: f64,
    /// Output tokens, hidden reasoning included (providers bill it as output).
    pub output: f64,
}

impl Prices {
    /// The cost of one call. Cached tokens are part of the input count and billed at their own
    /// price; a provider that reports more cached than input tokens is not trusted beyond the
    /// input count.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let input = usage.input_tokens.max(0);
        let cached = usage.cached_tokens.clamp(0, input);
        let output = usage.output_tokens.max(0);
        ((input - cached) as f64 * self.input
            + cached as f64 * self.cached_input
            + output as f64 * self.output)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_input_is_billed_at_its_own_price() {
        let prices = Prices {
            input: 2.0,
            cached_input: 0.5,
            output: 8.0,
        };
        let usage = Usage {
            input_tokens: 1_000_000,
            cached_tokens: 400_000,
            output_tokens: 250_000,
            reasoning_tokens: 100_000,
        };
        // 600k × 2 + 400k × 0.5 + 250k × 8, per million.
        assert!((prices.cost(&usage) - (1.2 + 0.2 + 2.0)).abs() < 1e-12);
    }

    #[test]
    fn nonsense_usage_never_costs_less_than_nothing() {
        let prices = Prices {
            input: 1.0,
            cached_input: 0.1,
            output: 1.0,
        };
        let usage = Usage {
            input_tokens: 10,
            cached_tokens: 50,
            output_tokens: -3,
            reasoning_tokens: 0,
        };
        assert!((prices.cost(&usage) - 10.0 * 0.1 / 1e6).abs() < 1e-15);
        assert_eq!(Prices::default().cost(&usage), 0.0);
    }
}
