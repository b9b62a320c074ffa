//! Fault windows: what a member's backend does at a simulated time.

use super::scenario::{FaultKind, FaultSpec};

/// The faults that touch one member, resolved at load time.
#[derive(Debug, Clone, Default)]
pub struct MemberFaults {
    /// Indices into the scenario's faults, with the resolved window end.
    active: Vec<(usize, FaultSpec, f64)>,
}

/// A member's backend behaviour at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// Refuses connections.
    pub down: bool,
    /// Service-time multiplier from `slow` faults.
    pub slow: f64,
    /// Fraction of answers that are 500.
    pub error_rate: f64,
}

impl Condition {
    /// No fault in force.
    pub const NORMAL: Condition = Condition { down: false, slow: 1.0, error_rate: 0.0 };
}

impl MemberFaults {
    pub fn add(&mut self, index: usize, f: &FaultSpec, end: f64) {
        self.active.push((index, f.clone(), f.until_s.unwrap_or(end)));
    }

    /// Indices of this member's faults.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.active.iter().map(|(i, _, _)| *i)
    }

    /// No fault ever touches this member.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn at(&self, t: f64) -> Condition {
        let mut c = Condition::NORMAL;
        for (_, f, until) in &self.active {
            if t < f.at_s || t >= *until {
                continue;
            }
            match f.kind {
                FaultKind::Down | FaultKind::AzDown => c.down = true,
                FaultKind::Slow => c.slow *= f.factor.unwrap_or(1.0),
                FaultKind::Errors => c.error_rate = c.error_rate.max(f.rate.unwrap_or(0.0)),
                FaultKind::Flap => {
                    let period = f.period_s.unwrap_or(1.0);
                    if (((t - f.at_s) / period).floor() as u64).is_multiple_of(2) {
                        c.down = true;
                    }
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, at: f64, until: Option<f64>) -> FaultSpec {
        FaultSpec {
            member: None,
            az: None,
            kind,
            at_s: at,
            until_s: until,
            factor: Some(3.0),
            rate: Some(0.25),
            period_s: Some(5.0),
        }
    }

    #[test]
    fn windows_and_flap_phases() {
        let mut m = MemberFaults::default();
        m.add(0, &fault(FaultKind::Down, 10.0, Some(20.0)), 100.0);
        m.add(1, &fault(FaultKind::Flap, 50.0, None), 100.0);
        m.add(2, &fault(FaultKind::Slow, 0.0, Some(5.0)), 100.0);
        m.add(3, &fault(FaultKind::Errors, 0.0, Some(5.0)), 100.0);
        assert_eq!(m.at(1.0), Condition { down: false, slow: 3.0, error_rate: 0.25 });
        assert!(!m.at(9.99).down && m.at(10.0).down && m.at(19.9).down && !m.at(20.0).down);
        assert!(m.at(52.0).down && !m.at(56.0).down && m.at(61.0).down && m.at(92.0).down && !m.at(99.0).down);
    }
}
