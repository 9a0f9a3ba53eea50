//! Where a delivery comes from: herald's own invite codes, or a message ZITADEL
//! posted to herald as its notification provider (docs/ARCHITECTURE.md, "ZITADEL's
//! notifications"). The one place that spells the words `deliveries.source` holds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::delivery::UnknownWord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliverySource {
    /// An invite code herald issued; the claim checks that it is still current.
    Invite,
    /// A message ZITADEL posted, with ZITADEL's own code: sent as received.
    Zitadel,
}

impl DeliverySource {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliverySource::Invite => "invite",
            DeliverySource::Zitadel => "zitadel",
        }
    }
}

impl FromStr for DeliverySource {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [DeliverySource::Invite, DeliverySource::Zitadel]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownWord { what: "source", word: s.to_string() })
    }
}

impl fmt::Display for DeliverySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in [DeliverySource::Invite, DeliverySource::Zitadel] {
            assert_eq!(s.as_str().parse::<DeliverySource>().unwrap(), s);
        }
        assert!("bulk".parse::<DeliverySource>().is_err());
    }
}
