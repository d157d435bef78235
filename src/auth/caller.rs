//! Who is calling and how far their token reaches: the scopes, `Reach` and `Caller`.

/// The scope that lets a token read and change everything: every order, the event
/// feed, metrics, dead letters, webhook endpoints.
pub const ADMIN_SCOPE: &str = "orders:admin";

/// The scope that lets a token read everything an admin reads, and change nothing
/// but its own orders: an on-call operator's, or the dashboard's read-only view.
pub const READ_SCOPE: &str = "orders:read";

/// How far a token reaches beyond its own orders, from its `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// Its own orders only.
    Own,
    /// Reads everything (`orders:read`); changes only its own orders.
    ReadAll,
    /// Reads and changes everything (`orders:admin`).
    Admin,
}

impl Reach {
    /// The reach a token's space-separated `scope` claim grants.
    pub fn of_scope(scope: Option<&str>) -> Self {
        let scopes: Vec<&str> = scope.unwrap_or_default().split_whitespace().collect();
        if scopes.contains(&ADMIN_SCOPE) {
            Self::Admin
        } else if scopes.contains(&READ_SCOPE) {
            Self::ReadAll
        } else {
            Self::Own
        }
    }

    /// The `scope` claim that grants it.
    pub fn scope(self) -> Option<&'static str> {
        match self {
            Self::Own => None,
            Self::ReadAll => Some(READ_SCOPE),
            Self::Admin => Some(ADMIN_SCOPE),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off: the embedded quick start, open to anyone who can reach it.
    Anyone,
    /// A verified token's subject, and how far its scope reaches.
    User { id: String, reach: Reach },
}

impl Caller {
    /// Whether the caller may act on everyone's orders.
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Anyone => true,
            Self::User { reach, .. } => *reach == Reach::Admin,
        }
    }

    /// Whether the caller may read everyone's orders, the feed, metrics and endpoints.
    pub fn reads_all(&self) -> bool {
        match self {
            Self::Anyone => true,
            Self::User { reach, .. } => *reach >= Reach::ReadAll,
        }
    }

    /// The user the caller is bound to, if any: admins are bound too, for creating.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::Anyone => None,
            Self::User { id, .. } => Some(id),
        }
    }

    /// Whether the caller may see an order of `owner`.
    pub fn may_see(&self, owner: &str) -> bool {
        self.reads_all() || self.subject() == Some(owner)
    }

    /// Whether the caller may change an order of `owner` (cancel it).
    pub fn may_change(&self, owner: &str) -> bool {
        self.is_admin() || self.subject() == Some(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widest_scope_named_decides_the_reach() {
        assert_eq!(Reach::of_scope(None), Reach::Own);
        assert_eq!(Reach::of_scope(Some("profile orders:read")), Reach::ReadAll);
        assert_eq!(
            Reach::of_scope(Some("orders:read orders:admin")),
            Reach::Admin
        );
        assert_eq!(Reach::of_scope(Some("orders:readx")), Reach::Own);
        for reach in [Reach::Own, Reach::ReadAll, Reach::Admin] {
            assert_eq!(Reach::of_scope(reach.scope()), reach);
        }
    }
}
