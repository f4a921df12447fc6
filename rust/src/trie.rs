//! A byte trie over a vocabulary, for longest-prefix matching.
//!
//! Nodes are numbered depth-first (preorder); each node's outgoing edges are contiguous in `labels` /
//! `targets` (sorted by byte), and nodes with many children also get a dense 256-entry table.
//! `longest_match` walks the input once: O(length of the match + one step), no hashing, no
//! allocation. Memory: about 9 bytes per edge plus 1 KiB per dense node.

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
    ///
    /// The keys are sorted once, then the nodes are laid out depth-first straight from the
    /// sorted ranges (the keys below a node are a contiguous range, its children the runs of
    /// equal bytes at its depth): O(n log n) comparisons plus O(total key bytes), no map per
    /// node.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a [u8], u32)>) -> Self {
        let mut keys: Vec<(&[u8], u32)> = keys.into_iter().collect();
        keys.reverse(); // so that the stable sort puts the last value of a key first
        keys.sort_by(|a, b| a.0.cmp(b.0));
        keys.dedup_by(|later, first| later.0 == first.0);
        let mut trie = Trie {
            nodes: Vec::new(),
            labels: Vec::new(),
            targets: Vec::new(),
            dense: Vec::new(),
        };
        // (range of keys, depth, the edge slot that points here)
        let mut stack = vec![(0, keys.len(), 0, NONE)];
        let mut children: Vec<(usize, usize, u8)> = Vec::new();
        while let Some((lo, hi, depth, edge)) = stack.pop() {
            let index = trie.nodes.len() as u32;
            if edge != NONE {
                trie.targets[edge as usize] = index;
            }
            let mut value = NONE;
            let mut i = lo;
            if i < hi && keys[i].0.len() == depth {
                value = keys[i].1;
                i += 1;
            }
            children.clear();
            while i < hi {
                let b = keys[i].0[depth];
                let start = i;
                while i < hi && keys[i].0[depth] == b {
                    i += 1;
                }
                children.push((start, i, b));
            }
            let first = trie.labels.len() as u32;
            for &(_, _, b) in &children {
                trie.labels.push(b);
                trie.targets.push(NONE);
            }
            let dense = if children.len() > DENSE_FROM {
                trie.dense.push([NONE; 256]);
                trie.dense.len() as u32 - 1
            } else {
                NONE
            };
            trie.nodes.push(Node {
                first,
                len: children.len() as u16,
                dense,
                value,
            });
            // depth-first preorder: a walk down the trie touches nearby nodes
            for (k, &(start, end, _)) in children.iter().enumerate().rev() {
                stack.push((start, end, depth + 1, first + k as u32));
            }
        }
        for node in &trie.nodes {
            if node.dense != NONE {
                let (a, e) = (node.first as usize, node.first as usize + node.len as usize);
                let table = &mut trie.dense[node.dense as usize];
                for (&l, &t) in trie.labels[a..e].iter().zip(&trie.targets[a..e]) {
                    table[l as usize] = t;
                }
            }
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
    fn repeated_keys_keep_the_last_value_and_the_empty_key_works() {
        let t = Trie::new(vec![(&b"ab"[..], 1), (b"", 7), (b"ab", 2), (b"a", 3)]);
        assert_eq!(t.value(Trie::ROOT), Some(7));
        assert_eq!(t.value(t.walk(Trie::ROOT, b"ab").unwrap()), Some(2));
        assert_eq!(t.value(t.walk(Trie::ROOT, b"a").unwrap()), Some(3));
        assert_eq!(t.walk(Trie::ROOT, b"b"), None);
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
