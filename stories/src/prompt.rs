//! A page's picture prompt and its seed. Every page is drawn from the same avatar token, character
//! card and style, with only the scene (and who is in it) changing, and from a seed fixed per
//! page and variant.

use crate::book::{Book, CastMember, Role, Style};

impl Style {
    /// Words before and after the subject in the prompt.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Style::Watercolour => (
                "a children's picture book watercolour illustration of",
                "soft watercolour, gentle pastel colours, white paper texture",
            ),
            Style::Crayon => (
                "a children's crayon drawing of",
                "wax crayon texture, bright colours, hand-drawn",
            ),
            Style::Soft3d => (
                "a soft 3D animated film still of",
                "rounded shapes, soft lighting, warm colours",
            ),
            Style::FlatVector => (
                "a flat vector picture book illustration of",
                "simple shapes, bold flat colours, clean lines",
            ),
        }
    }
}

impl CastMember {
    /// How a prompt names them: token and class word (or their name), then their card.
    fn subject(&self) -> String {
        let who = match &self.avatar {
            Some(token) => format!("{token} {}", self.role.word()),
            None => match self.role {
                Role::Pet => format!("a {}", self.role.word()),
                _ => "a child".to_owned(),
            },
        };
        match self.card.trim() {
            "" => who,
            card => format!("{who} ({card})"),
        }
    }
}

impl Book {
    /// Page `index`'s picture prompt: style, the avatar token with the character card, the scene.
    pub fn prompt(&self, index: usize) -> String {
        let (before, after) = self.style.words();
        let subject = match &self.avatar {
            Some(token) => format!("{token} toddler"),
            None => "a toddler".to_owned(),
        };
        let character = self.character.trim();
        let scene = self.pages.get(index).map_or("", |page| page.scene.trim());
        // The others follow the child and the child's card, each with their own card.
        let others: Vec<String> = self
            .cast_on_page(index)
            .into_iter()
            .map(CastMember::subject)
            .collect();
        let others = match others.as_slice() {
            [] => String::new(),
            [one] => format!("with {one}"),
            [first @ .., last] => format!("with {} and {last}", first.join(", ")),
        };
        [
            format!("{before} {subject}"),
            character.to_owned(),
            others,
            scene.to_owned(),
            after.to_owned(),
        ]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// The seed of page `index`'s variant `variant`.
    pub fn seed(&self, index: usize, variant: usize) -> u64 {
        self.drawing
            .seed
            .wrapping_add(1000 * index as u64)
            .wrapping_add(variant as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{mia, setup};
    use crate::templates::templates;

    #[test]
    fn the_prompt_keeps_token_character_and_style_on_every_page() {
        let template = &templates()[0];
        let book = Book::new(
            "b".into(),
            Some(template),
            setup(
                mia(),
                Some("<mia>".into()),
                "curly brown hair, yellow raincoat".into(),
                Style::Watercolour,
            ),
            0.0,
        );
        for index in 0..book.pages.len() {
            let prompt = book.prompt(index);
            assert!(
                prompt.starts_with("a children's picture book watercolour illustration of <mia> toddler, curly brown hair, yellow raincoat, "),
                "{prompt}"
            );
            assert!(prompt.contains(book.pages[index].scene.as_str()));
        }
        assert_eq!(book.seed(2, 1), 7 + 2001);
    }

    fn leo() -> CastMember {
        CastMember {
            name: "Leo".into(),
            role: Role::Sibling,
            avatar: Some("<leo>".into()),
            card: "short blond hair, red jumper".into(),
        }
    }

    #[test]
    fn a_page_names_each_character_with_token_and_card() {
        let mut book = Book::new(
            "b".into(),
            Some(&templates()[0]),
            setup(
                mia(),
                Some("<mia>".into()),
                "curly brown hair".into(),
                Style::Watercolour,
            ),
            0.0,
        );
        let dog = CastMember {
            name: "Biscuit".into(),
            role: Role::Pet,
            avatar: None,
            card: "small brown spaniel".into(),
        };
        let extra = CastMember {
            name: "Ava".into(),
            role: Role::Friend,
            avatar: Some("<ava>".into()),
            card: String::new(),
        };
        book.cast = vec![leo(), dog, extra];
        book.pages[1].cast = Some(vec![1]);
        book.pages[2].cast = Some(vec![]);
        // The whole cast by default, but never more than three in a picture.
        assert!(
            book.prompt(0).starts_with(
                "a children's picture book watercolour illustration of <mia> toddler, curly brown hair, \
                 with <leo> child (short blond hair, red jumper) and a pet (small brown spaniel), "
            ),
            "{}",
            book.prompt(0)
        );
        assert!(
            book.prompt(1)
                .contains(", with a pet (small brown spaniel), ")
        );
        assert!(!book.prompt(2).contains("with "), "{}", book.prompt(2));
        assert_eq!(book.avatars(), ["<mia>", "<leo>", "<ava>"]);
        // The seed does not depend on who is in the picture.
        assert_eq!(book.seed(1, 0), 7 + 1000);
    }

    #[test]
    fn the_cast_stays_out_of_the_pages_a_template_keeps_for_the_child_alone() {
        let bath = templates()
            .into_iter()
            .find(|template| template.id == "bath-time")
            .expect("the bath-time template");
        let mut book = Book::new(
            "b".into(),
            Some(&bath),
            setup(mia(), Some("<mia>".into()), String::new(), Style::Crayon),
            0.0,
        );
        book.cast.push(CastMember {
            name: "Leo".into(),
            role: Role::Sibling,
            avatar: Some("<leo>".into()),
            card: "red jumper".into(),
        });
        // In the bath she is on her own; laughing beside the tub, her brother can be there.
        assert!(bath.pages[2].alone && !bath.pages[4].alone);
        assert!(!book.prompt(2).contains("<leo>"), "{}", book.prompt(2));
        assert!(
            book.prompt(4).contains("with <leo> child (red jumper)"),
            "{}",
            book.prompt(4)
        );
        // The parent can still tick him in.
        book.pages[2].cast = Some(vec![0]);
        assert!(book.prompt(2).contains("<leo>"));
    }

    #[test]
    fn a_blank_book_has_one_page_and_no_avatar_draws_a_toddler() {
        let book = Book::new(
            "b".into(),
            None,
            setup(mia(), None, String::new(), Style::Crayon),
            0.0,
        );
        assert_eq!(book.pages.len(), 1);
        assert_eq!(
            book.prompt(0),
            "a children's crayon drawing of a toddler, wax crayon texture, bright colours, hand-drawn"
        );
    }
}
