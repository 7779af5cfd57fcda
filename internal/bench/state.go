package bench

import "github.com/cairnstore/cairn"

//go:generate go run github.com/cairnstore/cairn/tools/cairngen -type AgentState,Customer,Message,ToolCall,Args,Vars,StepDone -output state_gen.go

// AgentState is the state of the workload's checkpoints, as a Go engine
// would declare it: an agent's conversation and some bookkeeping. The map
// contenders save its JSON-like form (cairn.ToValue), so every contender
// stores the same record.
type AgentState struct {
	Step     int64     `msgpack:"step"`
	Status   string    `msgpack:"status"`
	Customer Customer  `msgpack:"customer"`
	Cart     []int64   `msgpack:"cart"`
	Messages []Message `msgpack:"messages"`
	Vars     Vars      `msgpack:"vars"`
}

// Customer is who the run works for.
type Customer struct {
	ID     int64   `msgpack:"id"`
	Name   string  `msgpack:"name"`
	Tier   string  `msgpack:"tier"`
	Credit float64 `msgpack:"credit"`
}

// Message is one message of the conversation.
type Message struct {
	Role      string     `msgpack:"role"`
	Content   string     `msgpack:"content"`
	Tokens    int64      `msgpack:"tokens"`
	Score     float64    `msgpack:"score"`
	Index     int64      `msgpack:"index"`
	ToolCalls []ToolCall `msgpack:"tool_calls"`
}

// ToolCall is a tool the model called.
type ToolCall struct {
	Name string `msgpack:"name"`
	Args Args   `msgpack:"args"`
}

// Args are a tool call's arguments.
type Args struct {
	ID     int64  `msgpack:"id"`
	Query  string `msgpack:"query"`
	Strict bool   `msgpack:"strict"`
}

// Vars are the run's variables.
type Vars struct {
	Retries  int64  `msgpack:"retries"`
	Deadline string `msgpack:"deadline"`
	Flags    []bool `msgpack:"flags"`
}

// StepDone is the pending event "myapp::StepDone" of every checkpoint.
type StepDone struct {
	Step int64 `msgpack:"step"`
	OK   bool  `msgpack:"ok"`
}

const stepDoneName = "myapp::StepDone"

// events registers StepDone, for the typed contender.
var events = func() *cairn.EventRegistry {
	r := new(cairn.EventRegistry)
	if err := cairn.RegisterEvent[StepDone](r, stepDoneName); err != nil {
		panic(err)
	}
	return r
}()
