//! Entity and org scope: which of a tenant's entities and orgs a call, a
//! job or a task is limited to.

use serde::{Deserialize, Serialize};

/// The entities and orgs something is limited to. An empty list leaves that
/// axis unrestricted (a tenant-wide token, or a job made with one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default)]
    pub entities: Vec<String>,
    #[serde(default)]
    pub orgs: Vec<String>,
}

impl Scope {
    pub fn new(entities: Vec<String>, orgs: Vec<String>) -> Self {
        Self { entities, orgs }
    }

    /// Neither axis is restricted.
    pub fn is_unrestricted(&self) -> bool {
        self.entities.is_empty() && self.orgs.is_empty()
    }

    /// Whether a row of `entity` and `org` is in scope: on a restricted
    /// axis the row's value must be one of the list (a row without one is
    /// out of scope).
    pub fn admits(&self, entity: Option<&str>, org: Option<&str>) -> bool {
        axis_admits(&self.entities, entity) && axis_admits(&self.orgs, org)
    }

    /// Whether a caller of this scope may see a job made with `job`'s: on
    /// each axis the caller is unrestricted, or the job's list is non-empty
    /// and every one of its values is the caller's.
    pub fn can_see(&self, job: &Scope) -> bool {
        axis_covers(&self.entities, &job.entities) && axis_covers(&self.orgs, &job.orgs)
    }
}

fn axis_admits(allowed: &[String], value: Option<&str>) -> bool {
    allowed.is_empty() || value.is_some_and(|v| allowed.iter().any(|a| a == v))
}

fn axis_covers(caller: &[String], job: &[String]) -> bool {
    caller.is_empty() || (!job.is_empty() && job.iter().all(|j| caller.contains(j)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(entities: &[&str], orgs: &[&str]) -> Scope {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Scope::new(owned(entities), owned(orgs))
    }

    #[test]
    fn rows_without_a_value_are_out_of_a_restricted_axis() {
        let e1 = scope(&["e1"], &[]);
        assert!(e1.admits(Some("e1"), None));
        assert!(e1.admits(Some("e1"), Some("o9")));
        assert!(!e1.admits(Some("e2"), None));
        assert!(!e1.admits(None, None));
        let both = scope(&["e1", "e2"], &["o1"]);
        assert!(both.admits(Some("e2"), Some("o1")));
        assert!(!both.admits(Some("e2"), Some("o2")));
        assert!(!both.admits(Some("e2"), None));
        assert!(Scope::default().admits(None, None));
    }

    #[test]
    fn a_job_is_seen_by_unrestricted_callers_and_by_callers_covering_its_lists() {
        let wide = Scope::default();
        let e1 = scope(&["e1"], &[]);
        let e12 = scope(&["e1", "e2"], &[]);
        let e2 = scope(&["e2"], &[]);
        assert!(wide.can_see(&e1));
        assert!(wide.can_see(&wide));
        assert!(e1.can_see(&e1));
        assert!(e12.can_see(&e1));
        assert!(!e1.can_see(&e12));
        assert!(!e2.can_see(&e1));
        // A tenant-wide job is invisible to a scoped caller.
        assert!(!e1.can_see(&wide));
        // Axes are independent.
        let o1 = scope(&[], &["o1"]);
        assert!(e1.can_see(&scope(&["e1"], &["o1"])));
        assert!(!o1.can_see(&e1));
        assert!(o1.can_see(&scope(&["e7"], &["o1"])));
    }

    #[test]
    fn old_messages_without_a_scope_decode_as_unrestricted() {
        #[derive(Serialize)]
        struct Empty {}
        let bytes = crate::encode(&Empty {}).unwrap();
        assert_eq!(crate::decode::<Scope>(&bytes).unwrap(), Scope::default());
    }
}
