"""torch.compile's ``cudagraphs`` backend with one CUDA graph per input shape.

The compiled execute cycle (``compile_scope="cycle"``) is traced once with dynamic shapes, so that
the curriculum's growing windows and prompts need no new trace. torch's ``cudagraphs`` backend
means to record one CUDA graph per value of the graph's integer inputs (the symbolic sizes), but
it finds them among the inputs it compiles with, where they are ``SymInt``s, no ``int``s, so it
finds none and keys every call alike: on the H100 the graph recorded in stage 1 was replayed for
stage 2's longer prompts and failed copying them into its buffers ("The size of tensor a (38)
must match the size of tensor b (48)", docs/experiments.md, "Session 38"). This backend is
torch's, forward and backward, but keyed on every input's shape: a new shape records its own
graph (a capture, no new trace), a known one replays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

BoxedFn = Callable[[list[Any]], Any]  # AOTAutograd's boxed calling convention: one list of inputs


def shape_key(inputs: Sequence[Any]) -> tuple[Hashable, ...]:
    """What a recorded graph is specific to: each tensor input's shape, and every other input
    (the integers of symbolic sizes) as it is."""
    return tuple(tuple(x.shape) if isinstance(x, torch.Tensor) else x for x in inputs)


class PerShape:
    """A boxed function that builds ``make(inputs)`` once per :func:`shape_key` of its inputs and
    calls the one for the inputs' shapes. The key is taken before the call, which may empty the
    list (CUDA graph trees free the inputs they copy)."""

    def __init__(self, make: Callable[[list[Any]], BoxedFn]) -> None:
        self.make = make
        self.fns: dict[tuple[Hashable, ...], BoxedFn] = {}
        # On the instance, not the class: AOTAutograd wraps a backward with functools.wraps, which
        # copies the instance's __dict__ (and so the mark) but not class attributes.
        self._boxed_call = True

    def __call__(self, inputs: list[Any]) -> Any:
        key = shape_key(inputs)
        fn = self.fns.get(key)
        if fn is None:
            fn = self.fns[key] = self.make(inputs)
        return fn(inputs)


def cudagraphs_per_shape(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Any:
    """A dynamo backend: AOTAutograd's forward and backward graphs, run by the FX interpreter
    (no generated kernels) and recorded as CUDA graph trees, one per input shape. A graph the
    trees cannot hold (an input on the CPU, an input mutation, an incompatible op) runs as it is,
    with torch's own "skipping cudagraphs due to ..." log line, as torch's backend does."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._dynamo.backends.cudagraphs import (check_for_skip, find_input_mutations, get_device_index,
                                                   get_stack_traces)
    from torch._dynamo.backends.debugging import boxed_nop
    from torch._inductor import cudagraph_trees
    from torch._inductor.cudagraph_utils import get_placeholder_info, log_cudagraph_skip_and_bump_counter
    from torch._inductor.utils import count_tangents, num_fw_fixed_arguments

    graphed = {"forward": True}  # a forward that runs without CUDA graphs leaves its backward without
    device: list[int] = [0]

    def per_shape(aot_model: torch.fx.GraphModule, aot_inputs: list[Any], fixed: int, index: int,
                  is_backward: bool, is_inference: bool = False) -> PerShape:
        interp = boxed_nop(aot_model, aot_inputs)
        # What cudagraphify_impl is told of the graph: the same for every shape, so worked out once.
        about = dict(device_index=index, is_backward=is_backward, is_inference=is_inference,
                     stack_traces=get_stack_traces(aot_model), placeholders=get_placeholder_info(aot_model.graph),
                     mutated_input_idxs=find_input_mutations(aot_model.graph))
        return PerShape(lambda inputs: cudagraph_trees.cudagraphify_impl(interp, inputs, range(fixed), **about))

    def forward(aot_model: torch.fx.GraphModule, aot_inputs: list[Any], is_inference: bool = False) -> Any:
        fixed = num_fw_fixed_arguments(len(example_inputs), len(aot_inputs))  # parameters: static addresses
        if skip := check_for_skip(aot_model, fixed):
            graphed["forward"] = False
            log_cudagraph_skip_and_bump_counter(f"skipping cudagraphs due to {skip}")
            return boxed_nop(aot_model, aot_inputs)
        device[0] = get_device_index(aot_model)
        return per_shape(aot_model, aot_inputs, fixed, device[0], is_backward=False, is_inference=is_inference)

    def backward(aot_model: torch.fx.GraphModule, aot_inputs: list[Any]) -> Any:
        if not graphed["forward"]:
            return aot_model
        fixed = count_tangents(aot_model)
        if skip := check_for_skip(aot_model, fixed):
            log_cudagraph_skip_and_bump_counter(f"skipping cudagraphs due to {skip}")
            manager = cudagraph_trees.get_manager(device[0], create_if_none_exists=False)

            def run_eager(inputs: list[Any]) -> Any:  # the trees must know a backward runs outside them
                manager.set_to_running_backward()
                return aot_model(inputs)

            run_eager._boxed_call = True  # type: ignore[attr-defined]
            return run_eager
        return per_shape(aot_model, aot_inputs, fixed, get_device_index(aot_model), is_backward=True)

    return aot_autograd(fw_compiler=forward, bw_compiler=backward,
                        inference_compiler=functools.partial(forward, is_inference=True),
                        keep_inference_input_mutations=torch._dynamo.config.cudagraph_backend_keep_input_mutation,
                        )(gm, example_inputs)
