//! Signals: named scopes in the instruction stream (`let _g = gt::signal("layer1");`). The client
//! streams scope enter/exit; the dispatcher keeps a scope stack per session, and its stream
//! modifiers (sharding, compilation) act on the regions a config names.

use crate::runtime::session;
use gt_client::Session;

/// An open signal scope; leaving it (dropping the guard) closes the scope. Scopes nest.
#[must_use = "the scope closes when the guard is dropped"]
pub struct Guard {
    session: Session,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.session.scope_exit();
    }
}

/// Opens the signal scope `name` on the default session until the guard is dropped.
pub fn enter(name: &str) -> Guard {
    let session = session();
    session.scope_enter(name);
    Guard { session }
}

/// Runs `f` inside the signal scope `name` and returns its result.
pub fn scope<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let _g = enter(name);
    f()
}
