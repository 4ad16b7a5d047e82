//! Recall: which of an owner's latest lessons a new goal is given.
//!
//! The order is the one `ts_rank` gives an OR-query of the goal's lexemes over the lessons'
//! lexemes without positions (`reflections.lesson_tsv` is stripped): every shared lexeme counts
//! the same, so the lesson sharing more ranks higher; among equals, the later task's first. A
//! lesson that shares none is not recalled. Ranking here instead of in SQL reads an owner's
//! latest lessons once for a whole claim and compares lexemes without a function call each:
//! `@@` and `ts_rank` over 200 lessons were most of a claim's CPU.

/// A lesson that may be recalled: its key in `reflections` and its lexemes.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub task_id: i64,
    pub id: i64,
    /// Sorted and without duplicates, as `tsvector_to_array` returns them.
    pub lexemes: Vec<String>,
}

/// The positions in `lessons` of the (at most) `limit` lessons best for a goal whose lexemes
/// are `goal`, best first.
pub fn rank(goal: &[String], lessons: &[Candidate], limit: usize) -> Vec<usize> {
    let mut goal: Vec<&str> = goal.iter().map(String::as_str).collect();
    goal.sort_unstable();
    goal.dedup();
    let mut scored: Vec<(usize, usize)> = (lessons.iter().enumerate())
        .map(|(i, lesson)| (i, shared(&goal, &lesson.lexemes)))
        .filter(|&(_, shared)| shared > 0)
        .collect();
    scored.sort_by(|&(a, shared_a), &(b, shared_b)| {
        let key = |i: usize| (lessons[i].task_id, lessons[i].id);
        shared_b.cmp(&shared_a).then(key(b).cmp(&key(a)))
    });
    scored.into_iter().take(limit).map(|(i, _)| i).collect()
}

/// How many lexemes two sorted lists have in common.
fn shared(goal: &[&str], lesson: &[String]) -> usize {
    let (mut g, mut l, mut count) = (0, 0, 0);
    while g < goal.len() && l < lesson.len() {
        match goal[g].cmp(lesson[l].as_str()) {
            std::cmp::Ordering::Less => g += 1,
            std::cmp::Ordering::Greater => l += 1,
            std::cmp::Ordering::Equal => {
                count += 1;
                g += 1;
                l += 1;
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        words.sort();
        words.dedup();
        words
    }

    fn lesson(task_id: i64, id: i64, text: &str) -> Candidate {
        Candidate {
            task_id,
            id,
            lexemes: words(text),
        }
    }

    #[test]
    fn more_shared_lexemes_rank_higher_and_later_tasks_break_ties() {
        let lessons = [
            lesson(1, 1, "penguin refund store"),
            lesson(2, 2, "walrus order"),
            lesson(3, 3, "penguin store"),
            lesson(4, 4, "penguin"),
            lesson(5, 5, "seal census"),
        ];
        let goal = words("refund penguin store total");
        assert_eq!(rank(&goal, &lessons, 10), vec![0, 2, 3]);
        assert_eq!(rank(&goal, &lessons, 2), vec![0, 2]);
        // Equal shares: the later task first.
        assert_eq!(rank(&words("penguin"), &lessons, 10), vec![3, 2, 0]);
    }

    #[test]
    fn nothing_shared_nothing_recalled() {
        let lessons = [lesson(1, 1, "penguin"), lesson(2, 2, "walrus")];
        assert!(rank(&words("seal"), &lessons, 3).is_empty());
        assert!(rank(&[], &lessons, 3).is_empty());
        assert!(rank(&words("penguin"), &lessons, 0).is_empty());
    }

    #[test]
    fn a_repeated_goal_lexeme_counts_once() {
        let lessons = [lesson(1, 1, "penguin store"), lesson(2, 2, "penguin")];
        let goal = vec![
            "penguin".to_owned(),
            "penguin".to_owned(),
            "store".to_owned(),
        ];
        assert_eq!(rank(&goal, &lessons, 3), vec![0, 1]);
    }

    #[test]
    fn two_lessons_of_one_retried_task_keep_a_stable_order() {
        let lessons = [lesson(7, 1, "penguin"), lesson(7, 2, "penguin")];
        assert_eq!(rank(&words("penguin"), &lessons, 3), vec![1, 0]);
    }
}
