//! A byte trie over a vocabulary, for longest-prefix matching.
//!
//! Nodes are numbered depth-first (preorder); each node's outgoing edges are contiguous in `labels` /
//! `targets` (sorted by byte), and nodes with many children also get a dense 256-entry table.
//! `longest_match` walks the input once: O(length of the match + one step), no hashing, no
//! allocation. Memory: about 9 bytes per edge plus 1 KiB per dense node.

use std::collections::BTreeMap;

const NONE: u32 = u32::MAX;
/// Nodes with more children than this get a dense table.
const DENSE_FROM: usize = 12;

#[derive(Clone, Copy)]
struct Node {
    first: u32,
    len: u16,
    dense: u32,
    value: u32,
}

/// A trie from byte strings to `u32` values.
pub struct Trie {
    nodes: Vec<Node>,
    labels: Vec<u8>,
    targets: Vec<u32>,
    dense: Vec<[u32; 256]>,
}

impl Trie {
    /// Builds the trie; a key given twice keeps its last value.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a [u8], u32)>) -> Self {
        // a temporary pointer trie, then flattened breadth-first
        let mut tmp: Vec<(BTreeMap<u8, usize>, u32)> = vec![(BTreeMap::new(), NONE)];
        for (key, value) in keys {
            let mut at = 0;
            for &b in key {
                let next = tmp.len();
                at = *tmp[at].0.entry(b).or_insert(next);
                if at == next {
                    tmp.push((BTreeMap::new(), NONE));
                }
            }
            tmp[at].1 = value;
        }
        // depth-first preorder: a walk down the trie touches nearby nodes
        let mut order = Vec::with_capacity(tmp.len());
        let mut index = vec![0u32; tmp.len()];
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            index[n] = order.len() as u32;
            order.push(n);
            stack.extend(tmp[n].0.values().rev().copied());
        }
        let mut trie = Trie {
            nodes: Vec::with_capacity(order.len()),
            labels: Vec::with_capacity(order.len()),
            targets: Vec::with_capacity(order.len()),
            dense: Vec::new(),
        };
        for &n in &order {
            let (children, value) = &tmp[n];
            let first = trie.labels.len() as u32;
            let mut dense = NONE;
            if children.len() > DENSE_FROM {
                let mut table = [NONE; 256];
                for (&b, &c) in children {
                    table[b as usize] = index[c];
                }
                dense = trie.dense.len() as u32;
                trie.dense.push(table);
            }
            for (&b, &c) in children {
                trie.labels.push(b);
                trie.targets.push(index[c]);
            }
            trie.nodes.push(Node {
                first,
                len: children.len() as u16,
                dense,
                value: *value,
            });
        }
        trie
    }

    /// The root node.
    pub const ROOT: u32 = 0;

    /// The child of `node` along `b`.
    #[inline]
    pub fn step(&self, node: u32, b: u8) -> Option<u32> {
        let n = &self.nodes[node as usize];
        let t = if n.dense != NONE {
            self.dense[n.dense as usize][b as usize]
        } else {
            let (a, e) = (n.first as usize, n.first as usize + n.len as usize);
            match self.labels[a..e].iter().position(|&l| l == b) {
                Some(p) => self.targets[a + p],
                None => NONE,
            }
        };
        (t != NONE).then_some(t)
    }

    /// The node reached from `node` along `bytes`.
    pub fn walk(&self, mut node: u32, bytes: &[u8]) -> Option<u32> {
        for &b in bytes {
            node = self.step(node, b)?;
        }
        Some(node)
    }

    /// The value stored at `node`.
    #[inline]
    pub fn value(&self, node: u32) -> Option<u32> {
        let v = self.nodes[node as usize].value;
        (v != NONE).then_some(v)
    }

    /// The longest key that `bytes` starts with (continuing from `node`): `(length, value)`.
    #[inline]
    pub fn longest_match(&self, mut node: u32, bytes: &[u8]) -> Option<(usize, u32)> {
        let mut best = None;
        for (i, &b) in bytes.iter().enumerate() {
            match self.step(node, b) {
                Some(next) => node = next,
                None => break,
            }
            if let Some(v) = self.value(node) {
                best = Some((i + 1, v));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix() {
        let keys: Vec<(&[u8], u32)> =
            vec![(b"a", 1), (b"ab", 2), (b"abcd", 3), (b"##b", 4), (b"b", 5)];
        let t = Trie::new(keys);
        assert_eq!(t.longest_match(Trie::ROOT, b"abcx"), Some((2, 2)));
        assert_eq!(t.longest_match(Trie::ROOT, b"abcde"), Some((4, 3)));
        assert_eq!(t.longest_match(Trie::ROOT, b"x"), None);
        let cont = t.walk(Trie::ROOT, b"##").unwrap();
        assert_eq!(t.longest_match(cont, b"bb"), Some((1, 4)));
        assert_eq!(t.value(t.walk(Trie::ROOT, b"b").unwrap()), Some(5));
    }

    #[test]
    fn dense_nodes() {
        let keys: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b, b]).collect();
        let t = Trie::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.as_slice(), i as u32)),
        );
        for b in 0u8..=255 {
            assert_eq!(t.longest_match(Trie::ROOT, &[b, b, 0]), Some((2, b as u32)));
            assert_eq!(t.longest_match(Trie::ROOT, &[b]), None);
        }
    }
}
