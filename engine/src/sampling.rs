//! Choosing the next token from a language model's scores: plain math on a `Vec<f32>`, as the
//! schedulers are for pictures, in transformers' order — repetition penalty, then temperature,
//! top-k and top-p, then a draw from a seeded generator (or the best token, greedy).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How the next token is chosen: the protocol's settings, whose default is greedy, so the worker,
/// the CLI and the tests share one type.
pub use protocol::Sampling;

/// A usage error for settings no sampler takes.
pub fn check(settings: &Sampling) -> Result<(), String> {
    if let Some(temperature) = settings.temperature
        && !(temperature.is_finite() && temperature > 0.0)
    {
        return Err(format!("the temperature {temperature} must be above 0"));
    }
    if !(settings.top_p > 0.0 && settings.top_p <= 1.0) {
        return Err(format!(
            "top-p {} must be above 0 and at most 1",
            settings.top_p
        ));
    }
    if !(settings.repetition_penalty.is_finite() && settings.repetition_penalty > 0.0) {
        return Err(format!(
            "the repetition penalty {} must be above 0",
            settings.repetition_penalty
        ));
    }
    Ok(())
}

/// A [`Sampling`] with its generator.
#[derive(Debug)]
pub struct Sampler {
    settings: Sampling,
    random: StdRng,
}

impl Sampler {
    pub fn new(settings: Sampling) -> Self {
        let random = StdRng::seed_from_u64(settings.seed);
        Sampler { settings, random }
    }

    /// The next token from `scores` (the vocabulary's logits), `history` being every token read
    /// so far (prompt and reply).
    pub fn next(&mut self, mut scores: Vec<f32>, history: &[u32]) -> u32 {
        let penalty = self.settings.repetition_penalty;
        if penalty != 1.0 {
            let mut seen = vec![false; scores.len()];
            for &id in history {
                if let Some(score) = scores.get_mut(id as usize)
                    && !std::mem::replace(&mut seen[id as usize], true)
                {
                    *score = if *score < 0.0 {
                        *score * penalty
                    } else {
                        *score / penalty
                    };
                }
            }
        }
        let Some(temperature) = self.settings.temperature else {
            return best(&scores);
        };
        // Candidates best first (ties: lower id first), cut by top-k, then by top-p.
        let mut order: Vec<usize> = (0..scores.len())
            .filter(|&id| scores[id].is_finite())
            .collect();
        let best_first = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
        if self.settings.top_k > 0 && self.settings.top_k < order.len() {
            // The k best in any order, then only those sorted: the same list as sorting all.
            order.select_nth_unstable_by(self.settings.top_k - 1, best_first);
            order.truncate(self.settings.top_k);
        }
        order.sort_by(best_first);
        if order.is_empty() {
            return best(&scores);
        }
        let top = scores[order[0]] / temperature;
        let weights: Vec<f64> = order
            .iter()
            .map(|&id| f64::from(scores[id] / temperature - top).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut kept = order.len();
        if self.settings.top_p < 1.0 {
            let mut reached = 0.0;
            for (index, weight) in weights.iter().enumerate() {
                reached += weight / total;
                if reached >= f64::from(self.settings.top_p) {
                    kept = index + 1;
                    break;
                }
            }
        }
        let kept_total: f64 = weights[..kept].iter().sum();
        let mut draw = self.random.random::<f64>() * kept_total;
        for (index, weight) in weights[..kept].iter().enumerate() {
            if draw < *weight {
                return order[index] as u32;
            }
            draw -= weight;
        }
        order[kept - 1] as u32
    }
}

/// The highest score's id (the first among equals, as `argmax`).
fn best(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (id, score) in scores.iter().enumerate() {
        if *score > scores[best] {
            best = id;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_best_after_the_repetition_penalty() {
        let mut sampler = Sampler::new(Sampling {
            repetition_penalty: 2.0,
            ..Sampling::default()
        });
        // Token 0 read before: 3.0 / 2 falls below token 1's 2.0.
        assert_eq!(sampler.next(vec![3.0, 2.0, -1.0], &[0, 0]), 1);
        assert_eq!(
            Sampler::new(Sampling::default()).next(vec![3.0, 2.0], &[0]),
            0
        );
    }

    #[test]
    fn a_seed_repeats_its_draws_and_top_k_one_is_greedy() {
        let settings = Sampling {
            temperature: Some(1.0),
            seed: 7,
            ..Sampling::default()
        };
        let scores = vec![0.5, 0.4, 0.3, 0.2, 0.1];
        let draws = |settings: &Sampling| {
            let mut sampler = Sampler::new(settings.clone());
            (0..50)
                .map(|_| sampler.next(scores.clone(), &[]))
                .collect::<Vec<_>>()
        };
        let first = draws(&settings);
        assert_eq!(first, draws(&settings));
        assert!(first.iter().any(|&id| id != 0), "{first:?}");
        let top_one = Sampling {
            top_k: 1,
            ..settings.clone()
        };
        assert!(draws(&top_one).iter().all(|&id| id == 0));
        // Top-p keeps the best tokens reaching the mass: token 0 holds ~0.99 of it here.
        let peaked = Sampling {
            top_p: 0.9,
            ..settings
        };
        let mut sampler = Sampler::new(peaked);
        assert!((0..50).all(|_| sampler.next(vec![10.0, 5.0, 0.0], &[]) == 0));
    }
}
