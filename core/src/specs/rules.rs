//! What `check` asks of `SpecApplied`: the document parses, validates and has its digest, and is not the live
//! spec already (re-applying records nothing).

use super::events::SpecApplied;
use super::{SpecState, parse};
use crate::rejection::Rejection;

pub fn applied(specs: &SpecState, p: &SpecApplied) -> Result<(), Rejection> {
    if let Some(live) = &specs.live
        && live.digest == p.digest
    {
        return Err(Rejection::SpecUnchanged { digest: p.digest, seq: live.seq });
    }
    parse(&p.document, &p.digest).map(|_| ())
}
