//! The query state machines.

use std::collections::{HashSet, VecDeque};

use usersync_model::{Membership, Record};
use usersync_sdk::paging::{parse_json, set_query_param, DEFAULT_MAX_PAGES};
use usersync_sdk::{
    Batch, ConnectorError, Cursor, HttpRequest, HttpResponse, Operation, PageParser, PagedCursor, Paging,
    ParsedPage, Query,
};

use crate::api::{GroupRep, RoleRep, UserRep};
use crate::delta::{AdminEventsCursor, Feed};
use crate::errors::admin_error;
use crate::map::{self, MapConfig, Mapped};
use crate::KeycloakSession;

/// Open the cursor answering `query`.
pub(crate) fn open(s: &KeycloakSession, query: &Query) -> Result<Box<dyn Cursor>, ConnectorError> {
    let op = query.operation();
    Ok(match query {
        Query::ListUsers => {
            let url = s.admin_url(&["users"])?;
            let listing = PagedCursor::new(
                first_page(&url, true, s.page_size)?,
                offset(s.page_size),
                UsersParser::new(op, &url, s.map.clone()),
            );
            let count = s
                .verify_counts
                .then(|| s.admin_url(&["users", "count"]))
                .transpose()?;
            Box::new(UsersListing { listing, count })
        }
        Query::GetUser { user_id } => single(s, user_id, UserMode::Get)?,
        Query::UserManager { user_id } => {
            if s.map.manager_attribute.is_none() {
                return Err(unsupported(
                    op,
                    "set `manager_attribute` to the user attribute holding the manager",
                ));
            }
            single(s, user_id, UserMode::Manager)?
        }
        Query::UserPhoto { user_id } => {
            if s.map.photo_attribute.is_none() {
                return Err(unsupported(
                    op,
                    "set `photo_attribute` to the user attribute holding the photo",
                ));
            }
            single(s, user_id, UserMode::Photo)?
        }
        Query::UserGroups { user_id } => {
            let url = s.admin_url(&["users", user_id, "groups"])?;
            let parser = MembershipParser::new(op, &url, Side::UserInGroups(user_id.clone()));
            paged(s, &url, false, parser)?
        }
        Query::ListGroups => Box::new(GroupTree::new(s)?),
        Query::GroupChildren { group_id } => {
            let url = s.admin_url(&["groups", group_id, "children"])?;
            let first = with_subgroup_count(first_page(&url, true, s.page_size)?)?;
            Box::new(PagedCursor::new(
                first,
                offset(s.page_size),
                ChildrenParser::new(group_id, &url),
            ))
        }
        Query::GroupMembers { group_id } => {
            let url = s.admin_url(&["groups", group_id, "members"])?;
            let parser = MembershipParser::new(op, &url, Side::MembersOf(group_id.clone()));
            paged(s, &url, false, parser)?
        }
        Query::ListRoles => {
            let url = s.admin_url(&["roles"])?;
            paged(s, &url, true, RolesParser::new(&url))?
        }
        Query::RoleMembers { role_id } => Box::new(RoleMembers::new(s, role_id)?),
        Query::UsersDelta { since } => Box::new(AdminEventsCursor::new(s, Feed::Users, since.as_deref())),
        Query::GroupsDelta { since } => Box::new(AdminEventsCursor::new(s, Feed::Groups, since.as_deref())),
        Query::UserTransitiveGroups { .. } | Query::GroupTransitiveMembers { .. } => {
            return Err(unsupported(
                op,
                "Keycloak has no transitive membership API; the host closes the group hierarchy",
            ))
        }
    })
}

fn unsupported(op: Operation, _why: &str) -> ConnectorError {
    ConnectorError::Unsupported {
        operation: op.as_str().to_string(),
    }
}

/// `GET /path` for messages (no query string: it carries nothing secret, but keeps messages short).
fn what(url: &str) -> String {
    let path = url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| url.to_string());
    format!("GET {path}")
}

fn offset(page_size: u64) -> Paging {
    Paging::Offset {
        first_param: "first".into(),
        max_param: "max".into(),
        page_size,
    }
}

/// The first page of an offset listing: `?briefRepresentation=..&first=0&max=N`.
fn first_page(url: &str, full: bool, page_size: u64) -> Result<HttpRequest, ConnectorError> {
    page_at(url, full, 0, page_size)
}

/// A page of an offset listing: `?briefRepresentation=..&first=F&max=N`.
fn page_at(url: &str, full: bool, first: u64, page_size: u64) -> Result<HttpRequest, ConnectorError> {
    let url = set_query_param(url, "briefRepresentation", if full { "false" } else { "true" })?;
    let url = set_query_param(&url, "first", &first.to_string())?;
    let url = set_query_param(&url, "max", &page_size.to_string())?;
    Ok(HttpRequest::get(url))
}

/// Ask for `subGroupCount` explicitly (Keycloak 23+ defaults it to true; older servers ignore it).
fn with_subgroup_count(mut req: HttpRequest) -> Result<HttpRequest, ConnectorError> {
    req.url = set_query_param(&req.url, "subGroupsCount", "true")?;
    Ok(req)
}

fn paged<P: PageParser + 'static>(
    s: &KeycloakSession,
    url: &str,
    full: bool,
    parser: P,
) -> Result<Box<dyn Cursor>, ConnectorError> {
    Ok(Box::new(PagedCursor::new(
        first_page(url, full, s.page_size)?,
        offset(s.page_size),
        parser,
    )))
}

fn parse_array<T: serde::de::DeserializeOwned>(
    response: &HttpResponse,
    what: &str,
) -> Result<Vec<T>, ConnectorError> {
    parse_json::<Vec<T>>(response, what)
}

// ---------------------------------------------------------------------------------------------
// users

/// `GET /users`: full representations, de-duplicated by id across pages.
struct UsersParser {
    op: Operation,
    what: String,
    cfg: MapConfig,
    seen: HashSet<String>,
}

impl UsersParser {
    fn new(op: Operation, url: &str, cfg: MapConfig) -> Self {
        UsersParser {
            op,
            what: what(url),
            cfg,
            seen: HashSet::new(),
        }
    }
}

impl PageParser for UsersParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let reps: Vec<UserRep> = parse_array(response, &self.what)?;
        let mut batch = Batch::default();
        let mut new_ids = HashSet::new();
        for rep in &reps {
            if self.seen.contains(&rep.id) || !new_ids.insert(rep.id.clone()) {
                batch.skip("duplicate_user");
                continue;
            }
            match map::user(rep, &self.cfg)? {
                Mapped::Record(u) => batch.records.push(Record::User(u)),
                Mapped::Skip(kind) => batch.skip(kind),
            }
        }
        // commit only once the whole page mapped: a failed page is re-read from scratch
        self.seen.extend(new_ids);
        let mut page = ParsedPage::new(batch, None);
        page.item_count = reps.len();
        Ok(page)
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(admin_error(response, self.op, &self.what))
    }
}

/// `list_users`: the offset listing, then (unless `verify_counts` is off) `GET /users/count`.
///
/// A Keycloak listing ends on an empty page, so a page that comes back empty mid-way (a proxy, a
/// timeout turned into `[]`, filtering) is indistinguishable from the end. The count catches it: fewer
/// distinct users read than counted fails the listing, and the host applies nothing destructive.
struct UsersListing {
    listing: PagedCursor<UsersParser>,
    count: Option<String>,
}

impl Cursor for UsersListing {
    fn next_request(&mut self) -> Option<HttpRequest> {
        self.listing
            .next_request()
            .or_else(|| self.count.as_ref().map(|url| HttpRequest::get(url.clone())))
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        if self.listing.next_request().is_some() {
            return self.listing.on_response(response);
        }
        let Some(url) = self.count.clone() else {
            return Err(ConnectorError::protocol(
                "response received after the listing ended",
            ));
        };
        let what = what(&url);
        if !response.is_success() {
            return Err(admin_error(&response, Operation::ListUsers, &what));
        }
        let counted: u64 = parse_json(&response, &what)?;
        check_count(self.listing.parser().seen.len() as u64, counted, "users", &what)?;
        self.count = None;
        Ok(Batch::default())
    }
}

fn check_count(read: u64, counted: u64, what: &str, request: &str) -> Result<(), ConnectorError> {
    if read < counted {
        return Err(ConnectorError::protocol(format!(
            "the listing ended after {read} {what} but {request} counts {counted}: a page was lost or the \
             listing was cut short (check the proxy and the realm-management roles; `verify_counts = false` \
             disables this check)"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum UserMode {
    Get,
    Manager,
    Photo,
}

fn single(s: &KeycloakSession, user_id: &str, mode: UserMode) -> Result<Box<dyn Cursor>, ConnectorError> {
    let url = s.admin_url(&["users", user_id])?;
    let parser = SingleUserParser {
        what: what(&url),
        user_id: user_id.to_string(),
        mode,
        cfg: s.map.clone(),
    };
    Ok(Box::new(PagedCursor::new(
        HttpRequest::get(url),
        Paging::Single,
        parser,
    )))
}

/// `GET /users/{id}` answering get_user, user_manager or user_photo.
struct SingleUserParser {
    what: String,
    user_id: String,
    mode: UserMode,
    cfg: MapConfig,
}

impl PageParser for SingleUserParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let rep: UserRep = parse_json(response, &self.what)?;
        if rep.id != self.user_id {
            return Err(ConnectorError::protocol(format!(
                "{} returned user `{}` instead of `{}`",
                self.what, rep.id, self.user_id
            )));
        }
        let mut batch = Batch::default();
        match self.mode {
            UserMode::Get => match map::user(&rep, &self.cfg)? {
                Mapped::Record(u) => batch.records.push(Record::User(u)),
                Mapped::Skip(kind) => batch.skip(kind),
            },
            UserMode::Manager => batch.records.push(Record::Manager {
                user_id: rep.id.clone(),
                manager: map::manager(&rep, &self.cfg),
            }),
            UserMode::Photo => match map::photo(&rep, &self.cfg) {
                Ok(Some(p)) => batch.records.push(Record::Photo(p)),
                Ok(None) => {}
                Err(kind) => batch.skip(kind),
            },
        }
        Ok(ParsedPage::new(batch, None))
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let op = match self.mode {
            UserMode::Get => Operation::GetUser,
            UserMode::Manager => Operation::UserManager,
            UserMode::Photo => Operation::UserPhoto,
        };
        Err(admin_error(response, op, &self.what))
    }
}

// ---------------------------------------------------------------------------------------------
// memberships

enum Side {
    /// `/users/{id}/groups`: each item is a group the user is a direct member of.
    UserInGroups(String),
    /// `/groups/{id}/members` or `/roles/{name}/users` (group id = role id): each item is a user.
    MembersOf(String),
}

struct MembershipParser {
    op: Operation,
    what: String,
    side: Side,
    seen: HashSet<String>,
}

impl MembershipParser {
    fn new(op: Operation, url: &str, side: Side) -> Self {
        MembershipParser {
            op,
            what: what(url),
            side,
            seen: HashSet::new(),
        }
    }
}

/// Only the id matters for a membership; both users and groups carry one.
#[derive(serde::Deserialize)]
struct IdOnly {
    id: String,
}

impl PageParser for MembershipParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let items: Vec<IdOnly> = parse_array(response, &self.what)?;
        let mut batch = Batch::default();
        let mut new_ids = HashSet::new();
        for item in &items {
            if self.seen.contains(&item.id) || !new_ids.insert(item.id.clone()) {
                batch.skip("duplicate_membership");
                continue;
            }
            let m = match &self.side {
                Side::UserInGroups(user_id) => Membership::direct_user(item.id.clone(), user_id.clone()),
                Side::MembersOf(group_id) => Membership::direct_user(group_id.clone(), item.id.clone()),
            };
            batch.records.push(Record::Membership(m));
        }
        self.seen.extend(new_ids);
        let mut page = ParsedPage::new(batch, None);
        page.item_count = items.len();
        Ok(page)
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(admin_error(response, self.op, &self.what))
    }
}

// ---------------------------------------------------------------------------------------------
// roles

struct RolesParser {
    what: String,
    seen: HashSet<String>,
}

impl RolesParser {
    fn new(url: &str) -> Self {
        RolesParser {
            what: what(url),
            seen: HashSet::new(),
        }
    }
}

impl PageParser for RolesParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let reps: Vec<RoleRep> = parse_array(response, &self.what)?;
        let mut batch = Batch::default();
        let mut new_ids = HashSet::new();
        for rep in &reps {
            if self.seen.contains(&rep.id) || !new_ids.insert(rep.id.clone()) {
                batch.skip("duplicate_role");
                continue;
            }
            if rep.client_role == Some(true) {
                batch.skip("client_role");
                continue;
            }
            batch.records.push(Record::Group(map::role(rep)));
        }
        self.seen.extend(new_ids);
        let mut page = ParsedPage::new(batch, None);
        page.item_count = reps.len();
        Ok(page)
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(admin_error(response, Operation::ListRoles, &self.what))
    }
}

/// `role_members`: resolve the role id to its name (`GET /roles-by-id/{id}`), then page
/// `GET /roles/{name}/users`. Memberships carry the role's id, as `list_roles` reports it.
struct RoleMembers {
    resolve: Option<HttpRequest>,
    role_id: String,
    roles_url: String,
    page_size: u64,
    members: Option<PagedCursor<MembershipParser>>,
}

impl RoleMembers {
    fn new(s: &KeycloakSession, role_id: &str) -> Result<Self, ConnectorError> {
        Ok(RoleMembers {
            resolve: Some(HttpRequest::get(s.admin_url(&["roles-by-id", role_id])?)),
            role_id: role_id.to_string(),
            roles_url: s.admin_url(&["roles"])?,
            page_size: s.page_size,
            members: None,
        })
    }
}

impl Cursor for RoleMembers {
    fn next_request(&mut self) -> Option<HttpRequest> {
        match &mut self.members {
            Some(c) => c.next_request(),
            None => self.resolve.clone(),
        }
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        if let Some(c) = &mut self.members {
            return c.on_response(response);
        }
        let Some(req) = &self.resolve else {
            return Err(ConnectorError::protocol(
                "response received after the listing ended",
            ));
        };
        let what = what(&req.url);
        if !response.is_success() {
            return Err(admin_error(&response, Operation::RoleMembers, &what));
        }
        let role: RoleRep = parse_json(&response, &what)?;
        if role.id != self.role_id {
            return Err(ConnectorError::protocol(format!(
                "{what} returned role `{}` instead of `{}`",
                role.id, self.role_id
            )));
        }
        let url = usersync_sdk::paging::join_url(&self.roles_url, &[&role.name, "users"])?;
        let parser = MembershipParser::new(
            Operation::RoleMembers,
            &url,
            Side::MembersOf(self.role_id.clone()),
        );
        let first = first_page(&url, false, self.page_size)?;
        self.members = Some(PagedCursor::new(first, offset(self.page_size), parser));
        self.resolve = None;
        Ok(Batch::default())
    }
}

// ---------------------------------------------------------------------------------------------
// groups

/// `GET /groups/{id}/children` for the `group_children` query.
struct ChildrenParser {
    parent_id: String,
    what: String,
    seen: HashSet<String>,
}

impl ChildrenParser {
    fn new(parent_id: &str, url: &str) -> Self {
        ChildrenParser {
            parent_id: parent_id.to_string(),
            what: what(url),
            seen: HashSet::new(),
        }
    }
}

impl PageParser for ChildrenParser {
    fn parse(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        let reps: Vec<GroupRep> = parse_array(response, &self.what)?;
        let mut batch = Batch::default();
        let mut new_ids = HashSet::new();
        for rep in &reps {
            if rep.id == self.parent_id || self.seen.contains(&rep.id) || !new_ids.insert(rep.id.clone()) {
                batch.skip("duplicate_group");
                continue;
            }
            batch
                .records
                .push(Record::Group(map::group(rep, Some((&self.parent_id, None)))));
            batch.records.push(Record::Membership(Membership::direct_group(
                self.parent_id.clone(),
                rep.id.clone(),
            )));
        }
        self.seen.extend(new_ids);
        let mut page = ParsedPage::new(batch, None);
        page.item_count = reps.len();
        Ok(page)
    }

    fn on_error(&mut self, response: &HttpResponse) -> Result<ParsedPage, ConnectorError> {
        Err(admin_error(response, Operation::GroupChildren, &self.what))
    }
}

/// One sub-group listing still to read.
#[derive(Debug, Clone)]
struct Walk {
    parent_id: String,
    parent_path: Option<String>,
    /// `subGroupCount` of the parent: the walk ends once this many children were read.
    expected: Option<u64>,
    received: u64,
    first: u64,
}

#[derive(Debug, Clone)]
enum Listing {
    Top { first: u64 },
    Children(Walk),
}

/// `list_groups`: every group of the realm, top level first, then each level of sub-groups.
///
/// Top-level groups come from `GET /groups` (offset paging until an empty page). A group's
/// sub-groups are taken from its embedded `subGroups` when they are complete (servers before
/// Keycloak 23 embed the whole tree, and send no `subGroupCount`); otherwise (Keycloak 23+:
/// `subGroupCount` > embedded) they are read from `GET /groups/{id}/children` with explicit
/// `first`, `max` (its default is 10) and `briefRepresentation=false` (its default differs from
/// `/groups`), until `subGroupCount` children were read or an empty page comes back.
pub(crate) struct GroupTree {
    admin: String,
    page_size: u64,
    current: Option<Listing>,
    queue: VecDeque<Walk>,
    seen: HashSet<String>,
    pages: u64,
    /// `GET /groups/count`, sent once the tree is read (unless `verify_counts` is off).
    count: Option<String>,
}

impl GroupTree {
    fn new(s: &KeycloakSession) -> Result<Self, ConnectorError> {
        let tree = GroupTree {
            admin: s.admin.clone(),
            page_size: s.page_size,
            current: Some(Listing::Top { first: 0 }),
            queue: VecDeque::new(),
            seen: HashSet::new(),
            pages: 0,
            count: s
                .verify_counts
                .then(|| s.admin_url(&["groups", "count"]))
                .transpose()?,
        };
        tree.request_for(&Listing::Top { first: 0 })?;
        Ok(tree)
    }

    /// The sub-tree below one group (a change feed re-reading a renamed group's descendants):
    /// its `count` children and, level by level, theirs; no count check. Groups in `known` (read
    /// already) are skipped with their sub-trees.
    pub(crate) fn subtree(
        s: &KeycloakSession,
        parent_id: &str,
        parent_path: Option<String>,
        count: u64,
        mut known: HashSet<String>,
    ) -> Result<Self, ConnectorError> {
        known.insert(parent_id.to_string());
        let walk = Walk {
            parent_id: parent_id.to_string(),
            parent_path,
            expected: Some(count),
            received: 0,
            first: 0,
        };
        let tree = GroupTree {
            admin: s.admin.clone(),
            page_size: s.page_size,
            current: Some(Listing::Children(walk.clone())),
            queue: VecDeque::new(),
            seen: known,
            pages: 0,
            count: None,
        };
        tree.request_for(&Listing::Children(walk))?;
        Ok(tree)
    }

    fn request_for(&self, listing: &Listing) -> Result<HttpRequest, ConnectorError> {
        let (url, first) = match listing {
            Listing::Top { first } => (usersync_sdk::paging::join_url(&self.admin, &["groups"])?, *first),
            Listing::Children(w) => (
                usersync_sdk::paging::join_url(&self.admin, &["groups", &w.parent_id, "children"])?,
                w.first,
            ),
        };
        with_subgroup_count(page_at(&url, true, first, self.page_size)?)
    }

    /// Map one group (and, when complete, its embedded sub-groups) into `out`.
    fn visit(
        &self,
        rep: &GroupRep,
        parent: Option<(&str, Option<&str>)>,
        out: &mut Batch,
        new_ids: &mut HashSet<String>,
        walks: &mut Vec<Walk>,
    ) {
        if self.seen.contains(&rep.id) || !new_ids.insert(rep.id.clone()) {
            out.skip("duplicate_group");
            return;
        }
        let group = map::group(rep, parent);
        let path = group.path.clone();
        out.records.push(Record::Group(group));
        if let Some((parent_id, _)) = parent {
            out.records.push(Record::Membership(Membership::direct_group(
                parent_id.to_string(),
                rep.id.clone(),
            )));
        }
        let embedded = rep.sub_groups.as_deref().unwrap_or(&[]);
        match rep.sub_group_count {
            Some(n) if n > embedded.len() as u64 => walks.push(Walk {
                parent_id: rep.id.clone(),
                parent_path: path,
                expected: Some(n),
                received: 0,
                first: 0,
            }),
            _ => {
                for child in embedded {
                    self.visit(child, Some((&rep.id, path.as_deref())), out, new_ids, walks);
                }
            }
        }
    }
}

impl Cursor for GroupTree {
    fn next_request(&mut self) -> Option<HttpRequest> {
        match self.current.as_ref() {
            // every listing's URL was built once before it became current (see `on_response`)
            Some(listing) => self.request_for(listing).ok(),
            None => self.count.as_ref().map(|url| HttpRequest::get(url.clone())),
        }
    }

    fn on_response(&mut self, response: HttpResponse) -> Result<Batch, ConnectorError> {
        let Some(listing) = self.current.clone() else {
            let Some(url) = self.count.clone() else {
                return Err(ConnectorError::protocol(
                    "response received after the listing ended",
                ));
            };
            let what = what(&url);
            if !response.is_success() {
                return Err(admin_error(&response, Operation::ListGroups, &what));
            }
            #[derive(serde::Deserialize)]
            struct Count {
                count: u64,
            }
            let counted: Count = parse_json(&response, &what)?;
            check_count(self.seen.len() as u64, counted.count, "groups", &what)?;
            self.count = None;
            return Ok(Batch::default());
        };
        let req = self.request_for(&listing)?;
        let what = what(&req.url);
        if !response.is_success() {
            let op = match listing {
                Listing::Top { .. } => Operation::ListGroups,
                Listing::Children(_) => Operation::GroupChildren,
            };
            // a sub-group listing of a group deleted meanwhile is not an error of the whole listing
            // only if the provider says so: Keycloak answers 404, which we surface (nothing is guessed)
            return Err(admin_error(&response, op, &what));
        }
        let reps: Vec<GroupRep> = parse_array(&response, &what)?;
        let mut batch = Batch::default();
        let mut new_ids = HashSet::new();
        let mut walks = Vec::new();
        let mut fresh = 0u64;
        for rep in &reps {
            if !self.seen.contains(&rep.id) && !new_ids.contains(&rep.id) {
                fresh += 1;
            }
            match &listing {
                Listing::Top { .. } => self.visit(rep, None, &mut batch, &mut new_ids, &mut walks),
                Listing::Children(w) => {
                    let parent = (w.parent_id.as_str(), w.parent_path.as_deref());
                    self.visit(rep, Some(parent), &mut batch, &mut new_ids, &mut walks)
                }
            }
        }
        let n = reps.len() as u64;
        let next = match listing {
            Listing::Top { first } if n > 0 => Some(Listing::Top { first: first + n }),
            Listing::Children(mut w) => {
                // count distinct children only: a repeated child must not end the walk early
                w.received += fresh;
                let complete = n == 0 || w.expected.is_some_and(|e| w.received >= e);
                if complete {
                    None
                } else {
                    w.first += n;
                    Some(Listing::Children(w))
                }
            }
            Listing::Top { .. } => None,
        };
        self.pages += 1;
        if self.pages >= DEFAULT_MAX_PAGES {
            return Err(ConnectorError::protocol(format!(
                "group listing stopped after {} pages (bound reached)",
                self.pages
            )));
        }
        // every request this page leads to must be buildable before anything is committed: a URL
        // that cannot be built must fail the listing here, never end it quietly in `next_request`
        for w in &walks {
            self.request_for(&Listing::Children(w.clone()))?;
        }
        if let Some(n) = &next {
            self.request_for(n)?;
        }
        // commit
        self.seen.extend(new_ids);
        self.queue.extend(walks);
        self.current = next.or_else(|| self.queue.pop_front().map(Listing::Children));
        Ok(batch)
    }
}
