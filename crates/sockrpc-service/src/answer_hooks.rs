//! `AnswerHooks`: how a client layer learns the code a one-message answer ended with, once the
//! caller decoded it.
//!
//! Why: a unary or client-streaming call's future completes with the answer's one message still
//! encoded, and [`Client`](crate::Client) decodes it after every layer has seen the call end.
//! The caller may then refuse it (over its `max_decoding_message_size`: `RESOURCE_EXHAUSTED`;
//! not decodable: `INTERNAL`), and a layer that recorded the call at its future's end recorded
//! `OK`. A streamed answer's body tells the layers watching it ([`Incoming::refused`]); a
//! one-message body is not wrapped (that would cost every call a box, or a larger `Body`), so
//! a layer that records the call's end hands a hook along in the response's extensions
//! instead, and the client tells it the code it returns.
//!
//! What a call with no layers pays: [`Client`](crate::Client) takes the hooks out of the
//! response's extensions — one check that the (unallocated) map is empty — and one branch on
//! the `None` it got. Nothing is allocated, locked or made larger.
//!
//! Told nothing — a response dropped undecoded, a service called without a `Client` — a hook
//! hears `OK` when the hooks are dropped: the answer came, as layers recorded it before.
//!
//! [`Incoming::refused`]: crate::Incoming::refused

use sockrpc_protocol::{Code, Extensions};

/// What a layer does once the caller took a one-message answer: records the call's end.
pub trait AnswerHook: Send + Sync + 'static {
    /// The caller decoded the answer (`Ok`), or refused it with `code`; or, when nobody
    /// decoded it, the answer was dropped (`Ok`: it arrived). Called once.
    fn answered(self: Box<Self>, code: Code);
}

/// The hooks of the layers a one-message answer passed, in a response's
/// [`Extensions`](sockrpc_protocol::Extensions): the innermost layer's first.
///
/// A copy of the extensions carries no hooks (a clone is empty): each layer hears once, from
/// the response that went on through the layers above it.
#[derive(Default)]
pub struct AnswerHooks {
    hooks: Vec<Box<dyn AnswerHook>>,
}

impl AnswerHooks {
    /// Adds `hook` to the hooks in `extensions` (a layer calls this as a one-message answer
    /// passes it, instead of recording the call's end).
    pub fn add(extensions: &mut Extensions, hook: impl AnswerHook) {
        let hook: Box<dyn AnswerHook> = Box::new(hook);
        match extensions.get_mut::<AnswerHooks>() {
            Some(hooks) => hooks.hooks.push(hook),
            None => {
                // Room for a tracing and a metrics layer's hooks without growing.
                let mut hooks = Vec::with_capacity(2);
                hooks.push(hook);
                extensions.insert(AnswerHooks { hooks });
            }
        }
    }

    /// Tells every hook the code the answer ended with for the caller.
    pub fn answered(mut self, code: Code) {
        self.tell(code);
    }

    /// How many hooks wait.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    fn tell(&mut self, code: Code) {
        // Outermost first, as the layers would have recorded it on the way up.
        while let Some(hook) = self.hooks.pop() {
            hook.answered(code);
        }
    }
}

/// Empty: the hooks stay with the response they came in (see the type's docs).
impl Clone for AnswerHooks {
    fn clone(&self) -> AnswerHooks {
        AnswerHooks::default()
    }
}

/// Hooks never told: the answer arrived, and nobody refused it.
impl Drop for AnswerHooks {
    fn drop(&mut self) {
        self.tell(Code::Ok);
    }
}

impl std::fmt::Debug for AnswerHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerHooks")
            .field("len", &self.hooks.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Note(&'static str, Arc<Mutex<Vec<(&'static str, Code)>>>);

    impl AnswerHook for Note {
        fn answered(self: Box<Self>, code: Code) {
            self.1.lock().expect("not poisoned").push((self.0, code));
        }
    }

    #[test]
    fn each_hook_hears_once_outermost_first() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut extensions = Extensions::new();
        AnswerHooks::add(&mut extensions, Note("inner", Arc::clone(&heard)));
        AnswerHooks::add(&mut extensions, Note("outer", Arc::clone(&heard)));
        // A copy hears nothing and tells nothing.
        drop(extensions.clone());
        assert!(heard.lock().expect("not poisoned").is_empty());
        let hooks = extensions.remove::<AnswerHooks>().expect("added");
        assert_eq!(hooks.len(), 2);
        hooks.answered(Code::ResourceExhausted);
        assert_eq!(
            *heard.lock().expect("not poisoned"),
            [
                ("outer", Code::ResourceExhausted),
                ("inner", Code::ResourceExhausted)
            ]
        );
    }

    /// The hooks ride in the extensions every response already has: what every call moves
    /// stays the size it was (48, 128 and 128 bytes on 64-bit targets, before this change too).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn what_every_call_moves_is_no_larger() {
        use crate::Body;
        use sockrpc_protocol::{Request, Response};
        let sizes = (
            std::mem::size_of::<Body>(),
            std::mem::size_of::<Request<Body>>(),
            std::mem::size_of::<Response<Body>>(),
        );
        assert_eq!(sizes, (48, 128, 128));
    }

    #[test]
    fn hooks_dropped_untold_hear_ok() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut extensions = Extensions::new();
        AnswerHooks::add(&mut extensions, Note("only", Arc::clone(&heard)));
        drop(extensions);
        assert_eq!(*heard.lock().expect("not poisoned"), [("only", Code::Ok)]);
    }
}
