//! herald at its edge (docs/API.md §1, §2.1, §3): hostile input over every route
//! (`hostile`), control characters named or answered as unknown ids (`control`),
//! caller-chosen user ids across tenants (`tenants`), the invite link (`links`),
//! the limits per recipient and organization (`limits`), personal data in provider
//! replies (`masking`), and secure defaults (`defaults`).

mod hostile;
mod control;
mod links;
mod tenants;
mod limits;
mod masking;
mod defaults;
mod attempts;
