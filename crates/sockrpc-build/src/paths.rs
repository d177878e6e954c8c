//! `ProtoPaths`: one protobuf path or several, as the builder's path-list options take them.
//!
//! prost-build's `bytes`, `btree_map`, `disable_comments` and `skip_debug` take a list
//! (`.bytes(["."])`); tonic-build's take one path (`.bytes(".")`). Both forms are written in
//! build scripts people copy, so both compile here: a string is one path, an array, slice,
//! `Vec` or an iterator over either is several.

/// One path (`&str`, `String`) or several (an array, slice or `Vec` of them, or an iterator
/// over a slice or `Vec`): what [`Builder::bytes`](crate::Builder::bytes) and the other
/// path-list options take.
pub trait ProtoPaths {
    /// The paths, owned.
    fn into_paths(self) -> Vec<String>;
}

fn owned<S: AsRef<str>>(paths: impl IntoIterator<Item = S>) -> Vec<String> {
    paths.into_iter().map(|p| p.as_ref().to_owned()).collect()
}

impl ProtoPaths for &str {
    fn into_paths(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl ProtoPaths for String {
    fn into_paths(self) -> Vec<String> {
        vec![self]
    }
}

impl ProtoPaths for &String {
    fn into_paths(self) -> Vec<String> {
        vec![self.clone()]
    }
}

impl<S: AsRef<str>, const N: usize> ProtoPaths for [S; N] {
    fn into_paths(self) -> Vec<String> {
        owned(self)
    }
}

impl<S: AsRef<str>, const N: usize> ProtoPaths for &[S; N] {
    fn into_paths(self) -> Vec<String> {
        owned(self)
    }
}

impl<S: AsRef<str>> ProtoPaths for &[S] {
    fn into_paths(self) -> Vec<String> {
        owned(self)
    }
}

impl<S: AsRef<str>> ProtoPaths for Vec<S> {
    fn into_paths(self) -> Vec<String> {
        owned(self)
    }
}

impl<S: AsRef<str>> ProtoPaths for &Vec<S> {
    fn into_paths(self) -> Vec<String> {
        owned(self)
    }
}

impl<S: AsRef<str>> ProtoPaths for std::slice::Iter<'_, S> {
    fn into_paths(self) -> Vec<String> {
        owned(self)
    }
}

impl<S: AsRef<str>> ProtoPaths for std::vec::IntoIter<S> {
    fn into_paths(self) -> Vec<String> {
        owned(self)
    }
}

#[cfg(test)]
mod tests {
    use super::ProtoPaths;

    #[test]
    fn one_path_or_several() {
        let list = vec![".a".to_owned(), ".b".to_owned()];
        let expected = [".a", ".b"];
        assert_eq!(".".into_paths(), ["."]);
        assert_eq!(".".to_owned().into_paths(), ["."]);
        assert_eq!([".a", ".b"].into_paths(), expected);
        assert_eq!((&[".a", ".b"]).into_paths(), expected);
        assert_eq!((&list[..]).into_paths(), expected);
        assert_eq!((&list).into_paths(), expected);
        assert_eq!(list.iter().into_paths(), expected);
        assert_eq!(list.into_paths(), expected);
    }
}
