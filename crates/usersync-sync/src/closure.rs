//! Effective (transitive) memberships over nested groups, with cycle detection.
//!
//! The engine detects cycles here and computes the closure itself in compact form
//! ([`crate::links`], index pairs instead of string pairs); [`Graph::effective`] is the plain
//! reference it must agree with (tested in `desired`), and what test doubles use.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Direct membership edges of one connection, by provider ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    /// group -> users that are direct members.
    pub user_members: BTreeMap<String, BTreeSet<String>>,
    /// child group -> groups it is a direct member of.
    pub parents: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Add "user is a direct member of group".
    pub fn add_user(&mut self, group: &str, user: &str) {
        self.user_members
            .entry(group.to_string())
            .or_default()
            .insert(user.to_string());
    }

    /// Add "child group is a direct member of parent group".
    pub fn add_group(&mut self, parent: &str, child: &str) {
        self.parents
            .entry(child.to_string())
            .or_default()
            .insert(parent.to_string());
    }

    /// Every group reachable upward from `group` (itself included), with the shortest path
    /// `[group, ..., ancestor]`. Terminates on cycles.
    pub fn ancestors(&self, group: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        out.insert(group.to_string(), vec![group.to_string()]);
        let mut queue = VecDeque::from([group.to_string()]);
        while let Some(g) = queue.pop_front() {
            let path = out.get(&g).cloned().unwrap_or_default();
            for p in self.parents.get(&g).into_iter().flatten() {
                if !out.contains_key(p) {
                    let mut np = path.clone();
                    np.push(p.clone());
                    out.insert(p.clone(), np);
                    queue.push_back(p.clone());
                }
            }
        }
        out
    }

    /// Effective memberships: (user, group) -> shortest path of group ids from the user's
    /// direct group to `group`. Ties are broken by the lexicographically smaller path, so the
    /// result is deterministic.
    pub fn effective(&self) -> BTreeMap<(String, String), Vec<String>> {
        let mut cache: BTreeMap<&str, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (group, users) in &self.user_members {
            let anc = cache
                .entry(group.as_str())
                .or_insert_with(|| self.ancestors(group));
            for user in users {
                for (a, path) in anc.iter() {
                    let key = (user.clone(), a.clone());
                    let better = match out.get(&key) {
                        None => true,
                        Some(old) => (path.len(), path) < (old.len(), old),
                    };
                    if better {
                        out.insert(key, path.clone());
                    }
                }
            }
        }
        out
    }

    /// Every cycle among groups, each as a closed path `[a, b, ..., a]` (one per strongly
    /// connected component with more than one group, or a self-loop).
    pub fn cycles(&self) -> Vec<Vec<String>> {
        // Tarjan's strongly connected components, iterative.
        let mut nodes: BTreeSet<&str> = BTreeSet::new();
        for (c, ps) in &self.parents {
            nodes.insert(c);
            nodes.extend(ps.iter().map(String::as_str));
        }
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut low: BTreeMap<&str, usize> = BTreeMap::new();
        let mut on_stack: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = Vec::new();
        let mut next = 0usize;
        let mut out = Vec::new();
        let empty = BTreeSet::new();
        for &start in &nodes {
            if index.contains_key(start) {
                continue;
            }
            let mut work: Vec<(&str, Vec<&str>)> = Vec::new();
            index.insert(start, next);
            low.insert(start, next);
            next += 1;
            stack.push(start);
            on_stack.insert(start);
            let succ: Vec<&str> = self
                .parents
                .get(start)
                .unwrap_or(&empty)
                .iter()
                .map(String::as_str)
                .collect();
            work.push((start, succ));
            while let Some((v, succ)) = work.last_mut() {
                let v = *v;
                if let Some(w) = succ.pop() {
                    if !index.contains_key(w) {
                        index.insert(w, next);
                        low.insert(w, next);
                        next += 1;
                        stack.push(w);
                        on_stack.insert(w);
                        let s: Vec<&str> = self
                            .parents
                            .get(w)
                            .unwrap_or(&empty)
                            .iter()
                            .map(String::as_str)
                            .collect();
                        work.push((w, s));
                    } else if on_stack.contains(w) {
                        let lw = index[w];
                        if let Some(lv) = low.get_mut(v) {
                            *lv = (*lv).min(lw);
                        }
                    }
                } else {
                    work.pop();
                    let lv = low[v];
                    if let Some((parent, _)) = work.last() {
                        if let Some(lp) = low.get_mut(parent) {
                            *lp = (*lp).min(lv);
                        }
                    }
                    if lv == index[v] {
                        let mut comp = Vec::new();
                        while let Some(w) = stack.pop() {
                            on_stack.remove(w);
                            comp.push(w.to_string());
                            if w == v {
                                break;
                            }
                        }
                        let self_loop = self.parents.get(v).is_some_and(|p| p.contains(v));
                        if comp.len() > 1 || self_loop {
                            comp.sort();
                            let first = comp[0].clone();
                            comp.push(first);
                            out.push(comp);
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_are_shortest_and_deterministic() {
        let mut g = Graph::default();
        // staff <- eng <- platform <- alice ; staff <- platform (shortcut)
        g.add_group("staff", "eng");
        g.add_group("eng", "platform");
        g.add_user("platform", "alice");
        g.add_user("eng", "bob");
        let e = g.effective();
        assert_eq!(e[&("alice".into(), "platform".into())], vec!["platform"]);
        assert_eq!(
            e[&("alice".into(), "staff".into())],
            vec!["platform", "eng", "staff"]
        );
        assert_eq!(e[&("bob".into(), "staff".into())], vec!["eng", "staff"]);
        assert!(!e.contains_key(&("bob".into(), "platform".into())));
        g.add_group("staff", "platform");
        assert_eq!(
            g.effective()[&("alice".into(), "staff".into())],
            vec!["platform", "staff"]
        );
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn cycles_terminate_and_are_reported() {
        let mut g = Graph::default();
        g.add_group("a", "b");
        g.add_group("b", "c");
        g.add_group("c", "a");
        g.add_group("x", "x");
        g.add_group("top", "a");
        g.add_user("c", "u");
        let e = g.effective();
        for grp in ["a", "b", "c", "top"] {
            assert!(e.contains_key(&("u".to_string(), grp.to_string())), "{grp}");
        }
        assert_eq!(e[&("u".into(), "b".into())], vec!["c", "b"]);
        assert_eq!(e[&("u".into(), "top".into())], vec!["c", "b", "a", "top"]);
        let cycles = g.cycles();
        assert_eq!(cycles, vec![vec!["a", "b", "c", "a"], vec!["x", "x"]]);
    }
}
