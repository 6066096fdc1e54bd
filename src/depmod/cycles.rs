//! Reporting dependency cycles the way kmod does, without kmod's endless loop.
//!
//! kmod walks from each module still in a cycle region, following every path, and
//! reports a cycle whenever a path returns to its starting module. It expands a
//! module again each time a path reaches it, so a path that enters a second cycle
//! not containing the start loops forever. Here a path stops when it would repeat a
//! module it already passed through, and reports that inner cycle instead. In every
//! case kmod finishes, no path repeats a module, so the output is the same.

use std::collections::HashSet;

use crate::diag::{Priority, Sink};
use crate::msgf;

/// One step of a walk: a module and the step it was reached from.
struct Step {
    module: u32,
    parent: Option<usize>,
}

/// The modules still to start a walk from. kmod keeps them in a circular list
/// whose head moves to the successor of each element removed, and always starts
/// the next walk at the head, so the head's movements decide the report order.
struct Roots {
    ring: Vec<u32>,
    head: usize,
}

impl Roots {
    fn take(&mut self) -> Option<u32> {
        if self.ring.is_empty() {
            return None;
        }
        let module = self.ring.remove(self.head);
        self.head = if self.ring.is_empty() {
            0
        } else {
            self.head % self.ring.len()
        };
        Some(module)
    }

    fn remove(&mut self, module: u32) {
        if let Some(at) = self.ring.iter().position(|&m| m == module) {
            self.ring.remove(at);
            self.head = if self.ring.is_empty() {
                0
            } else {
                at % self.ring.len()
            };
        }
    }
}

struct Walk<'a> {
    names: &'a [&'a [u8]],
    deps: &'a [&'a [u32]],
    log: &'a Sink,
    roots: Roots,
    /// Set once a module is expanded, never reset (kmod's global flag).
    visited: Vec<bool>,
    in_cycles: HashSet<u32>,
    /// Cycles reported so far, each as its module sequence rotated to start at the
    /// lowest index, so an inner cycle is not reported again.
    reported: HashSet<Vec<u32>>,
}

/// A cycle's module sequence, rotated to start at its lowest index.
fn canonical(cycle: &[u32]) -> Vec<u32> {
    let lowest = cycle
        .iter()
        .enumerate()
        .min_by_key(|&(_, &m)| m)
        .map_or(0, |(i, _)| i);
    cycle[lowest..]
        .iter()
        .chain(&cycle[..lowest])
        .copied()
        .collect()
}

/// Prints a `Cycle detected:` line per cycle and the number of modules in cycles.
/// `users` holds, per module, the dependents left over by the topological sort.
pub(super) fn report(names: &[&[u8]], deps: &[&[u32]], users: &[u32], log: &Sink) {
    let walk = walk_all(names, deps, users, log);
    log.log_bytes(
        Priority::Error,
        msgf!(
            "Found {} modules in dependency cycles!",
            walk.in_cycles.len()
        ),
    );
}

fn walk_all<'a>(
    names: &'a [&'a [u8]],
    deps: &'a [&'a [u32]],
    users: &[u32],
    log: &'a Sink,
) -> Walk<'a> {
    let mut walk = Walk {
        names,
        deps,
        log,
        roots: Roots {
            ring: (0..names.len() as u32)
                .filter(|&i| users[i as usize] > 0)
                .collect(),
            head: 0,
        },
        visited: vec![false; names.len()],
        in_cycles: HashSet::new(),
        reported: HashSet::new(),
    };
    while let Some(root) = walk.roots.take() {
        walk.from(root);
    }
    walk
}

impl Walk<'_> {
    /// The modules on the path to `step`, from the walk's start.
    fn path(steps: &[Step], step: Option<usize>) -> Vec<u32> {
        let mut path = Vec::new();
        let mut at = step;
        while let Some(i) = at {
            path.push(steps[i].module);
            at = steps[i].parent;
        }
        path.reverse();
        path
    }

    fn print(&self, cycle: &[u32], back_to: u32) {
        let mut line = b"Cycle detected: ".to_vec();
        for &m in cycle {
            line.extend_from_slice(self.names[m as usize]);
            line.extend_from_slice(b" -> ");
        }
        line.extend_from_slice(self.names[back_to as usize]);
        self.log.log_bytes(Priority::Error, &line);
    }

    fn from(&mut self, root: u32) {
        let mut steps = vec![Step {
            module: root,
            parent: None,
        }];
        let mut stack = vec![0usize];
        while let Some(at) = stack.pop() {
            let module = steps[at].module;
            if self.visited[module as usize] && module == root {
                let cycle = Self::path(&steps, steps[at].parent);
                for &m in &cycle {
                    self.in_cycles.insert(m);
                    self.roots.remove(m);
                }
                self.print(&cycle, root);
                self.reported.insert(canonical(&cycle));
                continue;
            }
            if module != root {
                let path = Self::path(&steps, steps[at].parent);
                if let Some(first) = path.iter().position(|&m| m == module) {
                    self.report_inner(&path[first..]);
                    continue;
                }
            }
            self.visited[module as usize] = true;
            let deps = self.deps[module as usize];
            if deps.is_empty() {
                self.roots.remove(module);
                continue;
            }
            for &d in deps {
                steps.push(Step {
                    module: d,
                    parent: Some(at),
                });
                stack.push(steps.len() - 1);
            }
        }
    }

    /// A cycle the walk ran into that does not pass through its start.
    fn report_inner(&mut self, cycle: &[u32]) {
        if !self.reported.insert(canonical(cycle)) {
            return;
        }
        for &m in cycle {
            self.in_cycles.insert(m);
            self.roots.remove(m);
        }
        self.print(cycle, cycle[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the walk on a graph given as edges between numbered modules.
    fn cycles_of(n: usize, edges: &[(u32, u32)]) -> (Vec<Vec<u32>>, usize) {
        let names: Vec<Vec<u8>> = (0..n).map(|i| vec![b'a' + i as u8]).collect();
        let names: Vec<&[u8]> = names.iter().map(|n| &n[..]).collect();
        let mut deps = vec![Vec::new(); n];
        for &(a, b) in edges {
            deps[a as usize].push(b);
        }
        let deps: Vec<&[u32]> = deps.iter().map(|d| &d[..]).collect();
        let users: Vec<u32> = (0..n as u32)
            .map(|i| edges.iter().filter(|e| e.1 == i).count() as u32)
            .collect();
        let log = Sink::silent();
        let walk = walk_all(&names, &deps, &users, &log);
        let mut seen: Vec<Vec<u32>> = walk.reported.into_iter().collect();
        seen.sort();
        (seen, walk.in_cycles.len())
    }

    #[test]
    fn nested_cycles_terminate() {
        // a <-> b, b -> c, c <-> d: kmod never returns from this one.
        let (inner, count) = cycles_of(4, &[(0, 1), (1, 0), (1, 2), (2, 3), (3, 2)]);
        assert_eq!(inner, vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(count, 4);
    }

    #[test]
    fn simple_cycle() {
        let (inner, count) = cycles_of(3, &[(0, 1), (1, 2), (2, 0)]);
        assert_eq!(inner, vec![vec![0, 1, 2]]);
        assert_eq!(count, 3);
    }
}
