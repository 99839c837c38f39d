package web

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/inpud/cairn/model"
	"github.com/inpud/cairn/node/records"
)

// priorityKinds are the three kinds the board keeps apart, in the order
// the training manual names them on Day 3.
var priorityKinds = []model.PriorityKind{model.PriorityChange, model.PriorityAchievement, model.PriorityAction}

var kindMarker = map[model.PriorityKind]string{model.PriorityChange: "C", model.PriorityAchievement: "P", model.PriorityAction: "A"}

// placed is one priority on the board.
type placed struct {
	Record   records.Record
	P        *model.Priority
	Marker   string // C1, P1, A1: its kind's letter and number
	Move     *form  // the move form, with a refused move's input and problem
	Audience []string
}

type cell struct {
	Importance, Achievability int
	TopRight                  bool
	Items                     []placed
}

// board is the importance × achievability grid of one kind: rows from
// importance 5 (top) down to 1, columns from achievability 1 to 5.
type board struct {
	Kind  model.PriorityKind
	Rows  [][]cell
	Items []placed
}

type boardPage struct {
	Boards []board
	Add    *form
}

var priorityFields = []string{"title", "kind", "importance", "achievability", "area", "target", "ask"}

// boards places priorities on one board per kind. moved carries a refused
// move, by record id.
func boards(recs []records.Record, moved map[string]*form) []board {
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID }) // markers stay put as priorities are added
	byKind := map[model.PriorityKind][]placed{}
	for _, rec := range recs {
		p, ok := rec.Body.(*model.Priority)
		if !ok {
			continue
		}
		n := len(byKind[p.Kind]) + 1
		f := moved[rec.ID]
		if f == nil {
			f = newForm()
			f.Values["importance"], f.Values["achievability"] = strconv.Itoa(p.Importance), strconv.Itoa(p.Achievability)
		}
		byKind[p.Kind] = append(byKind[p.Kind], placed{Record: rec, P: p, Marker: fmt.Sprintf("%s%d", kindMarker[p.Kind], n), Move: f})
	}
	var out []board
	for _, k := range priorityKinds {
		b := board{Kind: k, Items: byKind[k]}
		for imp := 5; imp >= 1; imp-- {
			var row []cell
			for ach := 1; ach <= 5; ach++ {
				c := cell{Importance: imp, Achievability: ach, TopRight: imp >= 4 && ach >= 4}
				for _, it := range b.Items {
					if it.P.Importance == imp && it.P.Achievability == ach {
						c.Items = append(c.Items, it)
					}
				}
				row = append(row, c)
			}
			b.Rows = append(b.Rows, row)
		}
		out = append(out, b)
	}
	return out
}

func (u *UI) priorityBoard(r *req) error {
	return u.renderBoard(r, http.StatusOK, nil, nil)
}

func (u *UI) renderBoard(r *req, code int, add *form, moved map[string]*form) error {
	recs, err := u.node.Records().List(records.Query{Kind: model.KindPriority})
	if err != nil {
		return err
	}
	if add == nil {
		add = newForm()
		add.Values["importance"], add.Values["achievability"] = "3", "3"
	}
	u.render(r, code, "priorities", pageData{Title: r.lang.T("nav.priorities"), Nav: "priorities", Body: boardPage{Boards: boards(recs, moved), Add: add}})
	return nil
}

// score reads a 1–5 score from a form field; a word or a fraction gets a
// sentence saying what is allowed (the range itself the service checks).
func score(f *form, field, value string) (int, bool) {
	f.Values[field] = value
	n, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil {
		what := map[string]string{"importance": "1 (least important) to 5 (most important)", "achievability": "1 (hardest to achieve) to 5 (most achievable)"}[field]
		f.Errors[field] = fmt.Sprintf("%s: %q is not a whole number: use %s", field, value, what)
		return 0, false
	}
	return n, true
}

func (u *UI) priorityAdd(r *req) error {
	f := newForm()
	for _, k := range priorityFields {
		f.Values[k] = r.PostFormValue(k)
	}
	imp, ok1 := score(f, "importance", f.V("importance"))
	ach, ok2 := score(f, "achievability", f.V("achievability"))
	if ok1 && ok2 {
		kind, err := model.ParsePriorityKind(f.V("kind"))
		if err == nil {
			_, err = u.node.Records().AddPriority(model.Priority{
				Kind: kind, Title: f.V("title"), Importance: imp, Achievability: ach,
				Area: f.V("area"), Target: f.V("target"), Ask: f.V("ask"),
			}, false)
		}
		if err == nil {
			return redirect(r, "/priorities")
		}
		if !f.userError(err, priorityFields...) {
			return err
		}
	}
	return u.renderBoard(r, http.StatusBadRequest, f, nil)
}

// priorityMove places a priority elsewhere on the board: dir up, down,
// left or right moves it one step from the importance and achievability
// the form holds; set (or none) places it there.
func (u *UI) priorityMove(r *req) error {
	id := r.PathValue("id")
	f := newForm()
	imp, ok1 := score(f, "importance", r.PostFormValue("importance"))
	ach, ok2 := score(f, "achievability", r.PostFormValue("achievability"))
	var err error
	if ok1 && ok2 {
		switch r.PostFormValue("dir") {
		case "up":
			imp++
		case "down":
			imp--
		case "right":
			ach++
		case "left":
			ach--
		}
		_, err = u.node.Records().UpdatePriority(id, records.PriorityPatch{Importance: &imp, Achievability: &ach})
		if err == nil {
			if r.PostFormValue("from") == "detail" {
				return redirect(r, "/priorities/"+id)
			}
			return redirect(r, "/priorities#p-"+id)
		}
		if !f.userError(err, "importance", "achievability") {
			return err
		}
	}
	if r.PostFormValue("from") == "detail" {
		rec, gerr := u.node.Records().Get(id)
		if gerr != nil {
			return gerr
		}
		return u.renderPriority(r, http.StatusBadRequest, rec, f, nil)
	}
	return u.renderBoard(r, http.StatusBadRequest, nil, map[string]*form{id: f})
}

type priorityPage struct {
	Record   records.Record
	Item     placed
	Audience audienceView
}

func (u *UI) priorityShow(r *req) error {
	rec, err := u.node.Records().Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	if rec.Kind != model.KindPriority {
		return redirect(r, recordPath(rec))
	}
	return u.renderPriority(r, http.StatusOK, rec, nil, nil)
}

func (u *UI) renderPriority(r *req, code int, rec records.Record, move, aud *form) error {
	p, ok := rec.Body.(*model.Priority)
	if !ok {
		return u.showBodiless(r, code, rec, aud)
	}
	if move == nil {
		move = newForm()
		move.Values["importance"], move.Values["achievability"] = strconv.Itoa(p.Importance), strconv.Itoa(p.Achievability)
	}
	page := priorityPage{Record: rec, Item: placed{Record: rec, P: p, Move: move}, Audience: u.audience(r.lang, rec, aud)}
	u.render(r, code, "priority", pageData{Title: p.Title, Nav: "priorities", Body: page})
	return nil
}
