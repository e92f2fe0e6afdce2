//! `choice!`: an enum of the strings a manifest key accepts, declared once. It gives the serde
//! names, the list validation offers ([`super::kinds::Ty::Choice`]) and `name()`, so that a new
//! value is one line and every `match` on the enum must handle it.

/// An enum of the strings a key accepts: the variants with their manifest names, and the lists
/// the schema takes.
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every value as written in a manifest, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];
            /// The type of a key that takes one of these.
            #[allow(dead_code, reason = "not every enum is a key of both shapes")]
            pub(crate) const ONE: $crate::manifest::kinds::Ty =
                $crate::manifest::kinds::Ty::Choice(Self::NAMES);
            /// The type of a key that takes a list of these.
            #[allow(dead_code, reason = "not every enum is a key of both shapes")]
            pub(crate) const LIST: $crate::manifest::kinds::Ty =
                $crate::manifest::kinds::Ty::Choices(Self::NAMES);

            /// As written in a manifest.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
