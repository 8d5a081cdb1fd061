//! Serde adapters for the value formats of the config file, with error messages that
//! name the bad value and show a good one (serde_path_to_error adds the key path).

/// Durations as humantime text: `"15m"`, `"2s"`, `"7d"`, `"1h 30m"`.
pub(super) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write e.g. \"500ms\", \"2s\", \"15m\", \"7d\""
            ))
        })
    }

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(d, s)
    }
}

/// Socket addresses as `"IP:PORT"` (no host names: a listener binds an address).
pub(super) mod socket_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse().map_err(|_| {
            de::Error::custom(format!(
                "invalid listen address {text:?}; write IP:PORT, e.g. \"0.0.0.0:8090\" or \"[::1]:8090\""
            ))
        })
    }

    pub(crate) fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        a.to_string().serialize(s)
    }
}

/// CIDR lists; a bare IP address means that single host (`/32` or `/128`).
pub(super) mod ip_nets {
    use std::net::IpAddr;

    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        items
            .iter()
            .map(|s| parse(s).map_err(de::Error::custom))
            .collect()
    }

    fn parse(text: &str) -> Result<IpNet, String> {
        let t = text.trim();
        if let Ok(net) = t.parse::<IpNet>() {
            return Ok(net.trunc());
        }
        t.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            format!(
                "invalid CIDR {text:?}; write e.g. \"10.0.0.0/8\", \"fd00::/8\" or \"192.0.2.7\""
            )
        })
    }

    pub(crate) fn serialize<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        let texts: Vec<String> = nets.iter().map(ToString::to_string).collect();
        texts.serialize(s)
    }
}
