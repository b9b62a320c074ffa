//! Enumerated strings of the cloud APIs' bodies. They match case-insensitively (the
//! create-VPC-channel API's own example sends `"protocol": "http"`) and serialize in the API
//! documents' canonical spelling.

/// Declares an enum of the APIs' strings: case-insensitive `Deserialize`/`FromStr`, canonical
/// `Serialize`/`Display`. An unknown value is a serde error that lists the accepted ones.
macro_rules! seed_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every accepted spelling, canonical case.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $(if s.eq_ignore_ascii_case($text) { return Ok(Self::$variant); })+
                Err(format!("`{}` is not one of {}", s, Self::ALL.join(", ")))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

seed_enum!(
    /// `member_type` of a VPC channel.
    MemberType { Ip = "ip", Ecs = "ecs" }
);

seed_enum!(
    /// `vpc_channel_type` of a VPC channel.
    VpcChannelType { Builtin = "builtin", Microservice = "microservice", Reference = "reference" }
);

seed_enum!(
    /// `vpc_health_config.protocol`.
    CheckProtocol { Tcp = "TCP", Http = "HTTP", Https = "HTTPS" }
);

seed_enum!(
    /// `vpc_health_config.method`.
    CheckMethod { Get = "GET", Head = "HEAD", Post = "POST", Put = "PUT", Delete = "DELETE", Patch = "PATCH", Options = "OPTIONS" }
);

seed_enum!(
    /// `microservice_info.service_type`.
    ServiceType { Cse = "CSE", Cce = "CCE", CceService = "CCE_SERVICE", Nacos = "NACOS" }
);

seed_enum!(
    /// `microservice_info.cce_info.workload_type`.
    WorkloadType { Deployment = "deployment", Statefulset = "statefulset", Daemonset = "daemonset" }
);

seed_enum!(
    /// SDRS `server_group.dr_type`.
    DrType { Migration = "migration" }
);
