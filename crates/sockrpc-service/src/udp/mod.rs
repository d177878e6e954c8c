//! UDP for small calls (in progress).
