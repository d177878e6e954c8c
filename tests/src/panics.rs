//! Panics the tests cause on purpose (a handler that panics, to prove it fails only its own
//! call): expected, so kept out of the output.

use std::sync::Once;

/// What every deliberate panic's message contains.
pub const DELIBERATE: &str = "deliberate panic";

/// Installs (once per process) a panic hook that stays quiet about messages containing
/// [`DELIBERATE`] and passes every other panic to the hook it replaced.
pub fn quiet_deliberate_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !message.contains(DELIBERATE) {
                previous(info);
            }
        }));
    });
}
