//! Which organisations' metadata a run reads, as Avni shows it to each
//! member organisation.
//!
//! Avni shares reference data (subject types, programs, encounter types,
//! forms, concepts, locations) down the organisation tree: under its own
//! role, an organisation sees its own rows and its ancestors' (the
//! `org_ids` view climbs `parent_organisation_id`); transactional rows
//! (subjects, enrolments, encounters) it sees only its own. avni-etl gets
//! this by reading metadata under `SET ROLE <db_user>`. The engine applies
//! the same rule in SQL instead, for every member in one query: it works
//! whatever role the service connects as (the owner `openchs`, or a role
//! with BYPASSRLS, which sees every organisation), needs no membership in
//! each organisation's role, and keeps one query per kind of metadata
//! rather than one per member.

use crate::engine::source::Target;
use crate::error::Error;
use diesel::QueryableByName;
use diesel::sql_types::{Array, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Deeper parent chains than this are taken as a cycle in
/// `parent_organisation_id` and cut.
const MAX_DEPTH: i32 = 64;

/// The organisations whose metadata a run reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    /// Every member and its ancestors, nearest first (members in member
    /// order, then their parents, ...): where two define the same entity,
    /// the nearest one's rows win.
    pub ids: Vec<i32>,
    /// Each member's own chain: the member, its parent, ...
    lineages: Vec<Vec<i32>>,
}

impl Visibility {
    /// What a standalone organisation with no parent sees.
    pub fn of_members(ids: &[i32]) -> Self {
        Self {
            ids: ids.to_vec(),
            lineages: ids.iter().map(|id| vec![*id]).collect(),
        }
    }

    /// `member`'s chain: the member, its parent, ... (only the member
    /// when it is not one of the run's).
    pub fn lineage(&self, member: i32) -> Vec<i32> {
        self.lineages
            .iter()
            .find(|chain| chain.starts_with(&[member]))
            .cloned()
            .unwrap_or_else(|| vec![member])
    }

    /// Whether a form element that the organisations `switched_off_by`
    /// marked non-applicable is hidden from the run: from a member when the
    /// member or one of its ancestors switched it off, and from the run when
    /// it is hidden from every member (a group's table has a question as
    /// long as one member asks it).
    pub fn hides(&self, switched_off_by: &[i32]) -> bool {
        !switched_off_by.is_empty()
            && !self.lineages.is_empty()
            && self
                .lineages
                .iter()
                .all(|chain| chain.iter().any(|id| switched_off_by.contains(id)))
    }

    fn from_chains(rows: Vec<ChainRow>, members: &[i32]) -> Self {
        let mut lineages: Vec<Vec<i32>> = members.iter().map(|id| vec![*id]).collect();
        let mut by_depth: Vec<(i32, usize, i32)> = Vec::new();
        for row in rows {
            let Some(m) = members.iter().position(|id| *id == row.member) else {
                continue;
            };
            if row.depth > 0 && !lineages[m].contains(&row.id) {
                lineages[m].push(row.id);
            }
            by_depth.push((row.depth, m, row.id));
        }
        by_depth.sort();
        let mut ids: Vec<i32> = members.to_vec();
        for (_, _, id) in by_depth {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Self { ids, lineages }
    }
}

#[derive(QueryableByName)]
struct ChainRow {
    #[diesel(sql_type = Integer)]
    member: i32,
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Integer)]
    depth: i32,
}

/// Each member's chain of ancestors, read from `organisation`.
pub async fn load_visibility(
    conn: &mut AsyncPgConnection,
    target: &Target,
) -> Result<Visibility, Error> {
    let members = target.member_ids();
    let rows: Vec<ChainRow> = diesel::sql_query(
        "WITH RECURSIVE chain(member, id, parent, depth) AS ( \
             SELECT o.id, o.id, o.parent_organisation_id, 0 \
             FROM public.organisation o WHERE o.id = ANY($1) \
             UNION ALL \
             SELECT c.member, p.id, p.parent_organisation_id, c.depth + 1 \
             FROM chain c JOIN public.organisation p ON p.id = c.parent \
             WHERE c.depth < $2) \
         SELECT member, id, depth FROM chain ORDER BY member, depth",
    )
    .bind::<Array<Integer>, _>(&members)
    .bind::<Integer, _>(MAX_DEPTH)
    .load(conn)
    .await?;
    Ok(Visibility::from_chains(rows, &members))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(member: i32, id: i32, depth: i32) -> ChainRow {
        ChainRow { member, id, depth }
    }

    #[test]
    fn members_come_first_then_their_ancestors_nearest_first() {
        // 5's parent is 3, whose parent is 1; 7 has none.
        let rows = vec![row(5, 5, 0), row(5, 3, 1), row(5, 1, 2), row(7, 7, 0)];
        let v = Visibility::from_chains(rows, &[5, 7]);
        assert_eq!(v.ids, vec![5, 7, 3, 1]);
        assert_eq!(v.lineages, vec![vec![5, 3, 1], vec![7]]);
    }

    #[test]
    fn a_members_lineage_is_its_chain_and_a_stranger_only_itself() {
        let v = Visibility::from_chains(vec![row(5, 5, 0), row(5, 3, 1), row(7, 7, 0)], &[5, 7]);
        assert_eq!(v.lineage(5), vec![5, 3]);
        assert_eq!(v.lineage(7), vec![7]);
        assert_eq!(v.lineage(9), vec![9]);
    }

    #[test]
    fn a_cycle_in_the_parent_chain_ends() {
        let rows = vec![row(2, 2, 0), row(2, 4, 1), row(2, 2, 2), row(2, 4, 3)];
        let v = Visibility::from_chains(rows, &[2]);
        assert_eq!(v.ids, vec![2, 4]);
        assert_eq!(v.lineages, vec![vec![2, 4]]);
    }

    #[test]
    fn a_question_is_hidden_only_from_members_whose_chain_switched_it_off() {
        let v = Visibility::from_chains(vec![row(5, 5, 0), row(5, 3, 1), row(7, 7, 0)], &[5, 7]);
        assert!(!v.hides(&[]));
        assert!(!v.hides(&[3]), "7 still asks it");
        assert!(v.hides(&[3, 7]));
        let single = Visibility::from_chains(vec![row(5, 5, 0), row(5, 3, 1)], &[5]);
        assert!(single.hides(&[3]), "switched off by the parent");
        assert!(single.hides(&[5]));
        assert!(!single.hides(&[9]), "another organisation's choice");
    }
}
