//! The Markdown template's `tasks`, made into template values only when
//! the template reads them. Converting the whole report up front held a
//! second copy of every task (about 110 MB at 50,000 tasks) for the whole
//! render. Here `tasks` is a sequence that makes a task's value when a loop
//! reaches it, and a task converts a field when the template reads it
//! (once per task value: a loop's `task` keeps what it converted until the
//! loop moves on). The template walks the tasks up to six times; a walk
//! that only asks `task.branch` converts only that field.

use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Enumerator, Object, ObjectRepr, Serde, Value};
use serde::ser::{self, Impossible, Serialize, SerializeStruct, Serializer};

use super::{Report, TaskReport};

/// The report's tasks, in `order` (indexes into `report.tasks`) when the
/// template shows them reordered.
#[derive(Debug)]
pub(super) struct Tasks {
    report: Arc<Report>,
    order: Option<Vec<usize>>,
}

impl Tasks {
    pub(super) fn new(report: Arc<Report>, order: Option<Vec<usize>>) -> Self {
        Self { report, order }
    }
}

impl Object for Tasks {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let at = key.as_usize()?;
        let index = match &self.order {
            Some(order) => *order.get(at)?,
            None => at,
        };
        self.report.tasks.get(index)?;
        Some(Value::from_object(Task {
            report: Arc::clone(&self.report),
            index,
            fields: Mutex::new(Vec::new()),
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.report.tasks.len())
    }
}

/// One task, a map with the JSON report's fields (the same names and
/// values as converting the whole task, fields it skips absent).
#[derive(Debug)]
struct Task {
    report: Arc<Report>,
    index: usize,
    /// The fields converted so far, kept while this value lives.
    fields: Mutex<Vec<(&'static str, Value)>>,
}

impl Task {
    fn task(&self) -> Option<&TaskReport> {
        self.report.tasks.get(self.index)
    }
}

impl Object for Task {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let mut fields = self.fields.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, value)) = fields.iter().find(|(n, _)| *n == name) {
            return Some(value.clone());
        }
        let mut pick = Pick::Field(name, None);
        // The walk stops at the field (`Stop::Found`): the fields after it
        // are not looked at.
        match self.task()?.serialize(&mut pick) {
            Ok(()) | Err(Stop::Found) => {}
            Err(Stop::NotAStruct) => return None,
        }
        let Pick::Field(_, Some((name, value))) = pick else {
            return None;
        };
        fields.push((name, value.clone()));
        Some(value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut pick = Pick::Names(Vec::new());
        match self.task().map(|task| task.serialize(&mut pick)) {
            Some(Ok(())) => {}
            _ => return Enumerator::Empty,
        }
        let Pick::Names(names) = pick else {
            return Enumerator::Empty;
        };
        Enumerator::Values(names.into_iter().map(Value::from).collect())
    }
}

/// A serializer of one struct that keeps only what it is asked for: one
/// field converted to a template value, or the names of the fields it
/// writes (`skip_serializing_if` ones left out, as in the JSON).
enum Pick<'k> {
    Field(&'k str, Option<(&'static str, Value)>),
    Names(Vec<&'static str>),
}

/// Why a [`Pick`] stopped: it has the field it was after, or what it was
/// given is not a struct.
#[derive(Debug)]
enum Stop {
    Found,
    NotAStruct,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Found => "found",
            Stop::NotAStruct => "not a struct",
        })
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop::NotAStruct
    }
}

impl SerializeStruct for &mut Pick<'_> {
    type Ok = ();
    type Error = Stop;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        #[cfg(test)]
        VISITED.with(|n| n.set(n.get() + 1));
        match self {
            Pick::Field(want, found) if *want == key => {
                #[cfg(test)]
                CONVERTED.with(|n| n.set(n.get() + 1));
                *found = Some((key, Value::from(Serde(value))));
                return Err(Stop::Found);
            }
            Pick::Field(..) => {}
            Pick::Names(names) => names.push(key),
        }
        Ok(())
    }

    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

#[cfg(test)]
thread_local! {
    /// How many task fields this thread converted: tests check that a
    /// template converts only what it reads.
    pub(super) static CONVERTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// How many task fields this thread's picks looked at.
    pub(super) static VISITED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Everything but a struct is refused.
macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<(), Stop> {
            Err(Stop::NotAStruct)
        })*
    };
}

impl Serializer for &mut Pick<'_> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Impossible<(), Stop>;
    type SerializeTuple = Impossible<(), Stop>;
    type SerializeTupleStruct = Impossible<(), Stop>;
    type SerializeTupleVariant = Impossible<(), Stop>;
    type SerializeMap = Impossible<(), Stop>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Stop>;

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Stop> {
        Err(Stop::NotAStruct)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        Err(Stop::NotAStruct)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        Err(Stop::NotAStruct)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Stop> {
        Err(Stop::NotAStruct)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Stop> {
        Err(Stop::NotAStruct)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Stop> {
        Err(Stop::NotAStruct)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Stop> {
        Err(Stop::NotAStruct)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        Err(Stop::NotAStruct)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Stop> {
        Err(Stop::NotAStruct)
    }
}
