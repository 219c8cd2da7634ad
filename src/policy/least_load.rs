//! `least_load`: the DNS form of least connections. Endpoints report a load (active
//! connections, or any number where lower is better) through the API or their health check;
//! an endpoint scores `weight / (1 + load)`.
//!
//! Handing every answer to the best score would send a whole TTL's worth of clients to one
//! endpoint until its next report, so the leader is the better of two endpoints drawn at
//! random in proportion to weight (the power of two choices): the least loaded lead most
//! answers, and none is starved. The other endpoints follow by score. An endpoint without a
//! current load counts as the average of those with one.

use super::{Asking, Order, Strategy};
use crate::metrics::PolicyLabel;

#[derive(Debug)]
pub struct LeastLoad {
    weights: Box<[u32]>,
}

impl LeastLoad {
    pub fn new(weights: &[u32]) -> Self {
        Self {
            weights: weights.into(),
        }
    }

    /// Endpoint `i`'s effective weight: configured times its share.
    fn weight(&self, asking: &Asking<'_, '_>, i: usize) -> f64 {
        f64::from(self.weights[i]) * asking.share(i)
    }

    /// Every endpoint's score, `weight / (1 + load)`.
    fn scores(&self, asking: &Asking<'_, '_>) -> smallvec::SmallVec<[(f64, u32); 16]> {
        let n = self.weights.len();
        let known: smallvec::SmallVec<[f32; 16]> = (0..n).filter_map(|i| asking.load(i)).collect();
        let average = match known.len() {
            0 => 0.0,
            k => known.iter().map(|&l| f64::from(l)).sum::<f64>() / k as f64,
        };
        (0..n)
            .map(|i| {
                let load = asking.load(i).map_or(average, f64::from);
                (self.weight(asking, i) / (1.0 + load), i as u32)
            })
            .collect()
    }

    /// One live endpoint drawn in proportion to effective weight; `None` if none is live.
    fn draw(&self, asking: &mut Asking<'_, '_>, total: f64) -> Option<u32> {
        let mut ticket = asking.rng.f64() * total;
        let mut last = None;
        for i in 0..self.weights.len() {
            if !(asking.live)(i as u32) {
                continue;
            }
            let w = self.weight(asking, i);
            last = Some(i as u32);
            if ticket < w {
                return last;
            }
            ticket -= w;
        }
        last
    }
}

impl Strategy for LeastLoad {
    fn label(&self) -> PolicyLabel {
        PolicyLabel::LeastLoad
    }

    fn fixed(&self) -> bool {
        self.weights.len() <= 1
    }

    fn order_for(&self, asking: &mut Asking<'_, '_>, limit: usize, out: &mut Order) {
        let mut scores = self.scores(asking);
        let total: f64 = (0..self.weights.len())
            .filter(|&i| (asking.live)(i as u32))
            .map(|i| self.weight(asking, i))
            .sum();
        let lead = match (self.draw(asking, total), self.draw(asking, total)) {
            (Some(a), Some(b)) if scores[b as usize].0 > scores[a as usize].0 => Some(b),
            (a, _) => a,
        };
        scores.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let start = out.len();
        out.extend(lead);
        out.extend(scores.iter().map(|&(_, i)| i).filter(|&i| Some(i) != lead));
        out.truncate(start + limit.min(self.weights.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Feedback;
    use crate::policy::Decision;

    /// How often each endpoint leads `count` answers with these loads.
    fn leads(loads: &[Option<f32>], live: &dyn Fn(u32) -> bool, count: usize) -> Vec<usize> {
        let p = LeastLoad::new(&vec![1; loads.len()]);
        let feedback: Vec<Feedback> = loads
            .iter()
            .map(|&load| Feedback {
                load,
                ..Feedback::default()
            })
            .collect();
        let mut rng = fastrand::Rng::with_seed(5);
        let decision = Decision::new(&[], 0);
        let mut led = vec![0; loads.len()];
        for _ in 0..count {
            let mut asking = Asking {
                decision: &decision,
                cx: None,
                live,
                rng: &mut rng,
                feedback: &feedback,
            };
            let mut out = Order::new();
            p.order_for(&mut asking, usize::MAX, &mut out);
            assert_eq!(out.len(), loads.len());
            led[out[0] as usize] += 1;
        }
        led
    }

    #[test]
    fn the_least_loaded_lead_most_and_none_starves() {
        let led = leads(&[Some(10.0), Some(20.0), Some(70.0)], &|_| true, 9000);
        assert!(led[0] > led[1] && led[1] > led[2], "{led:?}");
        assert!(led[2] > 0, "{led:?}");
        // Two draws of three: the best leads unless both miss it, 5/9 of the time.
        assert!((f64::from(led[0] as u32) / 9000.0 - 5.0 / 9.0).abs() < 0.03);
    }

    #[test]
    fn without_loads_it_spreads_evenly() {
        let led = leads(&[None, None, None], &|_| true, 9000);
        assert!(led.iter().all(|&l| (2700..3300).contains(&l)), "{led:?}");
    }

    #[test]
    fn only_live_endpoints_lead() {
        let led = leads(&[Some(0.0), Some(50.0), Some(90.0)], &|i| i != 0, 3000);
        assert_eq!(led[0], 0, "{led:?}");
        assert!(led[1] > led[2], "{led:?}");
    }
}
