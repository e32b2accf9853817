"""SB2's parameter layouts: the name, shape and order of the variables each policy family creates.

A layout is what `get_parameter_list()` returns for a network, as a list of `Parameter`s in TensorFlow's
creation order. It is the one home of SB2's parameter naming: the unnamed-list namer (`unnamed_lists.py`) names
an old file's list by position from it, the conformance generator and the tests' factories fill random values
into it, and the builders read the same scope and leaf names from here.

The families (sources: `common/policies.py`, `common/tf_layers.py`, `deepq/policies.py`, `deepq/build_graph.py`,
`sac/policies.py`, `td3/policies.py`, `ddpg/policies.py`, `ddpg/ddpg.py`, `trpo_mpi/trpo_mpi.py`,
`gail/adversary.py`):
- actor-critic (`model/`): SB2's `linear` layers (`w`, `b`): `shared_fc{i}`, `pi_fc{j}`/`vf_fc{j}`, the heads
  `vf`, `pi` (+ `pi/logstd`), `q`; nature_cnn (`c1..c3`, `fc1`); the LSTM `lstm1` (`wx`, `wh`, `b`, and the
  layer-norm gains and biases);
- DQN (`deepq/`): `tf.contrib` `fully_connected{_i}` layers (`weights`, `biases`) and `LayerNorm{_i}`
  (`beta`, `gamma`) in the `action_value` and `state_value` towers;
- SAC, TD3, DDPG (`model/`, `target/`): keras-style `tf.layers.dense` layers (`kernel`, `bias`), `fc{i}` then
  the heads, each hidden layer optionally followed by its contrib `LayerNorm{_i}`.
"""
from __future__ import annotations

import re
from itertools import zip_longest
from typing import Any, Collection, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..ops.layers import conv_axis
from .description import Space

Shape = Tuple[int, ...]

#: what a parameter is to the network: it decides how a generator draws its value
KERNEL, BIAS, GAIN, LOG_STD, SCALAR, STATISTIC = "kernel", "bias", "gain", "log_std", "scalar", "statistic"


class Parameter(NamedTuple):
    """One variable of a layout: its SB2 name, its shape, its role (KERNEL, BIAS, ...), and whether it multiplies
    the policy's input directly (the flattened observation, the image, or observation and action for a critic)."""

    name: str
    shape: Shape
    role: str
    reads_input: bool = False


Layout = List[Parameter]

#: SB2's default hidden layers for every family (`layers=None` in its policies)
DEFAULT_LAYERS = (64, 64)

# -- dense layers and their naming styles ------------------------------------------------------------------------
#: leaf names (weight, bias) of SB2's own `linear` (common/tf_layers.py), used by the actor-critic policies
LINEAR_LEAVES = ("w", "b")
#: leaf names of `tf.layers.dense`, used by SAC, TD3 and DDPG
KERAS_DENSE_LEAVES = ("kernel", "bias")
#: leaf names of `tf.contrib.layers.fully_connected`, used by DQN and GAIL's discriminator
CONTRIB_DENSE_LEAVES = ("weights", "biases")
#: leaf names of `tf.contrib.layers.layer_norm`, in creation order
LAYER_NORM_LEAVES = ("beta", "gamma")
CONTRIB_DENSE_STEM = "fully_connected"
LAYER_NORM_STEM = "LayerNorm"


def variable(scope: str, leaf: str) -> str:
    """The stored name of the variable `leaf` in `scope`: TensorFlow's `scope/leaf:0`."""
    return "{}/{}:0".format(scope, leaf)


def numbered_scope(stem: str, index: int) -> str:
    """TensorFlow's name for the `index`-th unnamed layer of a kind in one scope: `stem`, `stem_1`, `stem_2`..."""
    return stem + ("_{}".format(index) if index else "")


def dense(scope: str, rows: int, cols: int, leaves: Tuple[str, str], reads_input: bool = False) -> Layout:
    """A dense layer's kernel [rows, cols] and bias [cols] under `scope`, named by `leaves`."""
    return [Parameter(variable(scope, leaves[0]), (rows, cols), KERNEL, reads_input),
            Parameter(variable(scope, leaves[1]), (cols,), BIAS)]


def layer_norm_parameters(scope: str, size: int) -> Layout:
    """tf.contrib.layers.layer_norm's `beta` and `gamma` [size] under `scope`."""
    beta, gamma = LAYER_NORM_LEAVES
    return [Parameter(variable(scope, beta), (size,), BIAS), Parameter(variable(scope, gamma), (size,), GAIN)]


def flat_width(space: Space) -> int:
    """Width of a space as SB2's policies flatten it: the processed observation (one-hot for discrete kinds) and
    the policy head's flat distribution parameters (logits per choice, or one mean per value) alike."""
    if space.kind == "discrete":
        return int(space.n)
    if space.kind == "multi_discrete":
        return int(sum(space.nvec))
    return int(np.prod(space.shape))


# -- nature_cnn (common/policies.py) -----------------------------------------------------------------------------
#: nature_cnn's convolutions (ReLU after each): scope, kernel size, stride, filters
NATURE_CNN_CONVOLUTIONS = (("c1", 8, 4, 32), ("c2", 4, 2, 64), ("c3", 3, 1, 64))
#: its dense layer on the flattened convolutions (ReLU): scope and units, the features it returns
NATURE_CNN_DENSE, NATURE_CNN_FEATURES = "fc1", 512


def nature_cnn_layout(prefix: str, image_shape: Sequence[int], padding: str = "VALID") -> Tuple[Layout, int]:
    """(nature_cnn's parameters under `prefix`, its feature width) on images [H, W, C]: HWIO kernels and the
    [1, C, 1, 1] biases SB2's `conv` stores, then `fc1`. `padding` is nature_cnn's `pad` kwarg."""
    height, width, channels = (int(size) for size in image_shape)
    layout: Layout = []
    weight, bias = LINEAR_LEAVES
    for scope, kernel, stride, filters in NATURE_CNN_CONVOLUTIONS:
        layout += [Parameter(variable(prefix + scope, weight), (kernel, kernel, channels, filters), KERNEL,
                             reads_input=not layout),
                   Parameter(variable(prefix + scope, bias), (1, filters, 1, 1), BIAS)]
        height = conv_axis(height, kernel, stride, padding).size
        width = conv_axis(width, kernel, stride, padding).size
        channels = filters
    layout += dense(prefix + NATURE_CNN_DENSE, height * width * channels, NATURE_CNN_FEATURES, LINEAR_LEAVES)
    return layout, NATURE_CNN_FEATURES


def nature_cnn_kernel(prefix: str) -> str:
    """The name of nature_cnn's first kernel under `prefix`: a policy has nature_cnn there if it has this one."""
    return variable(prefix + NATURE_CNN_CONVOLUTIONS[0][0], LINEAR_LEAVES[0])


def has_nature_cnn(parameters: Collection[str], prefix: str) -> bool:
    """Whether nature_cnn's parameters are under `prefix`."""
    return nature_cnn_kernel(prefix) in parameters


def _features(prefix: str, observation_space: Space, cnn_padding: Optional[str]) -> Tuple[Layout, int]:
    """The feature extractor's parameters and width: nature_cnn under `prefix`, or none (the flattened input)."""
    if cnn_padding is None:
        return [], flat_width(observation_space)
    return nature_cnn_layout(prefix, observation_space.shape, cnn_padding)


# -- actor-critic policies (common/policies.py: FeedForwardPolicy, LstmPolicy) ------------------------------------
ACTOR_CRITIC_SCOPE = "model/"
#: the heads of every actor-critic policy: the value, the distribution's flat parameters, ACER's q
VALUE_HEAD, POLICY_HEAD, Q_HEAD = "vf", "pi", "q"
#: the Gaussian's state-independent log-std beside the policy head (Box actions)
LOG_STD = POLICY_HEAD + "/logstd"
LSTM = "lstm1"
#: the LSTM's input and recurrent kernels and bias
LSTM_LEAVES = ("wx", "wh", "b")
#: the layer-norm LSTM's gains and biases (of x·wx, h·wh, and the cell), in creation order
LSTM_LAYER_NORM_LEAVES = (("gx", 4), ("bx", 4), ("gh", 4), ("bh", 4), ("gc", 1), ("bc", 1))
#: the actor-critic families' hidden layer stems: `shared_fc{i}`, `pi_fc{j}`, `vf_fc{j}`
SHARED_STEM, POLICY_STEM, VALUE_STEM = "shared_fc", "pi_fc", "vf_fc"


def fc_scope(stem: str, index: int) -> str:
    """An actor-critic hidden layer's scope, e.g. `pi_fc0`."""
    return "{}{}".format(stem, index)


def actor_critic_mlp_layout(observation_space: Space, action_space: Space, net_arch: Sequence[Any]) -> Layout:
    """MlpPolicy (`mlp_extractor`): `net_arch` is layer sizes (shared) and optionally, last, dict(pi=[...],
    vf=[...]) whose layers SB2 creates interleaved per depth (pi_fc0, vf_fc0, pi_fc1, ...); then the heads."""
    return _actor_critic_layers(flat_width(observation_space), action_space, list(net_arch), 0, False, True)


def actor_critic_cnn_layout(observation_space: Space, action_space: Space, padding: str = "VALID") -> Layout:
    """CnnPolicy: nature_cnn on the image, its features read by every head."""
    layout, width = nature_cnn_layout(ACTOR_CRITIC_SCOPE, observation_space.shape, padding)
    return layout + actor_critic_heads(width, width, action_space)


def lstm_layout(observation_space: Space, action_space: Space, n_lstm: int, layer_norm: bool,
                layers: Optional[Sequence[int]] = None, net_arch: Optional[Sequence[Any]] = None,
                cnn_padding: Optional[str] = None) -> Layout:
    """LstmPolicy. Without `net_arch` (SB2's legacy layout): nature_cnn (`cnn_padding` given) or the `layers` as
    `pi_fc{i}`, then the LSTM, whose output every head reads. With `net_arch` (MLP features only): its sizes as
    `shared_fc{position}`, 'lstm' the LSTM at its position, then dict(pi=[...], vf=[...]): unlike MlpPolicy,
    LstmPolicy creates every pi_fc layer, then every vf_fc layer."""
    if net_arch is not None:
        return _actor_critic_layers(flat_width(observation_space), action_space, list(net_arch), n_lstm,
                                    layer_norm, False)
    if cnn_padding is not None:
        layout, width = nature_cnn_layout(ACTOR_CRITIC_SCOPE, observation_space.shape, cnn_padding)
    else:
        layout, width = [], flat_width(observation_space)
        for index, size in enumerate(DEFAULT_LAYERS if layers is None else layers):
            layout += dense(ACTOR_CRITIC_SCOPE + fc_scope(POLICY_STEM, index), width, size, LINEAR_LEAVES,
                            reads_input=index == 0)
            width = size
    layout += lstm_parameters(width, n_lstm, layer_norm, reads_input=not layout)
    return layout + actor_critic_heads(n_lstm, n_lstm, action_space)


def lstm_parameters(width: int, n_lstm: int, layer_norm: bool, reads_input: bool = False) -> Layout:
    """`lstm1` (common/tf_layers.py `lstm`) on inputs of `width`: gates i, f, o, g side by side in 4·n columns."""
    wx, wh, bias = (variable(ACTOR_CRITIC_SCOPE + LSTM, leaf) for leaf in LSTM_LEAVES)
    layout = [Parameter(wx, (width, 4 * n_lstm), KERNEL, reads_input), Parameter(wh, (n_lstm, 4 * n_lstm), KERNEL),
              Parameter(bias, (4 * n_lstm,), BIAS)]
    if layer_norm:
        layout += [Parameter(variable(ACTOR_CRITIC_SCOPE + LSTM, leaf), (gates * n_lstm,),
                             GAIN if leaf.startswith("g") else BIAS) for leaf, gates in LSTM_LAYER_NORM_LEAVES]
    return layout


def actor_critic_heads(pi_width: int, vf_width: int, action_space: Space) -> Layout:
    """`vf` (one value), `pi` (the distribution's flat parameters, and `pi/logstd` [1, n] for Box actions) and
    `q` (ACER's, created by every algorithm), in that order (`proba_distribution_from_latent`)."""
    out = flat_width(action_space)
    layout = dense(ACTOR_CRITIC_SCOPE + VALUE_HEAD, vf_width, 1, LINEAR_LEAVES)
    layout += dense(ACTOR_CRITIC_SCOPE + POLICY_HEAD, pi_width, out, LINEAR_LEAVES)
    if action_space.kind == "box":
        layout.append(Parameter(ACTOR_CRITIC_SCOPE + LOG_STD + ":0", (1, out), LOG_STD))
    return layout + dense(ACTOR_CRITIC_SCOPE + Q_HEAD, vf_width, out, LINEAR_LEAVES)


def _actor_critic_layers(width: int, action_space: Space, net_arch: List[Any], n_lstm: int, layer_norm: bool,
                         interleaved: bool) -> Layout:
    """net_arch walked as SB2 walks it: sizes are `shared_fc{position}`, 'lstm' the LSTM, a dict the split, whose
    pi_fc and vf_fc layers are created `interleaved` per depth (mlp_extractor) or pi first (LstmPolicy)."""
    layout: Layout = []
    pi_layers: List[int] = []
    vf_layers: List[int] = []
    for position, item in enumerate(net_arch):
        if isinstance(item, dict):
            pi_layers, vf_layers = list(item.get("pi", [])), list(item.get("vf", []))
            break
        if item == "lstm":
            layout += lstm_parameters(width, n_lstm, layer_norm, reads_input=not layout)
            width = n_lstm
        else:
            layout += dense(ACTOR_CRITIC_SCOPE + fc_scope(SHARED_STEM, position), width, int(item), LINEAR_LEAVES,
                            reads_input=not layout)
            width = int(item)
    split_reads_input = not layout
    pi_branch = _branch(POLICY_STEM, width, pi_layers, split_reads_input)
    vf_branch = _branch(VALUE_STEM, width, vf_layers, split_reads_input)
    if interleaved:
        for pi_layer, vf_layer in zip_longest(pi_branch, vf_branch):
            layout += (pi_layer or []) + (vf_layer or [])
    else:
        layout += [parameter for layer in pi_branch + vf_branch for parameter in layer]
    pi_width = int(pi_layers[-1]) if pi_layers else width
    vf_width = int(vf_layers[-1]) if vf_layers else width
    heads = actor_critic_heads(pi_width, vf_width, action_space)
    if split_reads_input and not pi_layers and not vf_layers:
        heads = [parameter._replace(reads_input=parameter.role == KERNEL) for parameter in heads]
    return layout + heads


def _branch(stem: str, width: int, sizes: Sequence[int], reads_input: bool) -> List[Layout]:
    """The layers `{stem}{j}` of one side of net_arch's split, each a layout, on inputs of `width`."""
    layers = []
    for index, size in enumerate(sizes):
        layers.append(dense(ACTOR_CRITIC_SCOPE + fc_scope(stem, index), width, int(size), LINEAR_LEAVES,
                            reads_input and index == 0))
        width = int(size)
    return layers


def trpo_layout(policy: Layout) -> Layout:
    """TRPO (and GAIL) save the policy, then the same variables under `oldpi/` (trpo_mpi.py get_trainable_vars)."""
    return policy + [parameter._replace(name="oldpi/" + parameter.name) for parameter in policy]


def gail_adversary_layout(observation_width: int, action_width: int, hidden: int) -> Layout:
    """GAIL's discriminator (gail/adversary.py): three fully_connected layers on [observation, action]."""
    layout: Layout = []
    rows = observation_width + action_width
    for index, cols in enumerate((hidden, hidden, 1)):
        scope = "adversary/" + numbered_scope(CONTRIB_DENSE_STEM, index)
        layout += dense(scope, rows, cols, CONTRIB_DENSE_LEAVES, reads_input=index == 0)
        rows = cols
    return layout


# -- DQN (deepq/policies.py FeedForwardPolicy, deepq/build_graph.py) ---------------------------------------------
DQN_SCOPE = "deepq/"
DQN_MODEL_SCOPE = DQN_SCOPE + "model/"
DQN_ACTION_SCOPE = DQN_MODEL_SCOPE + "action_value/"
DQN_STATE_SCOPE = DQN_MODEL_SCOPE + "state_value/"
#: the exploration epsilon, created first
DQN_EPSILON = DQN_SCOPE + "eps:0"
#: copies of the Q network: parameter noise's perturbed and adaptive ones, and the target network
DQN_NOISE_COPIES = (DQN_SCOPE + "perturbed_model/", DQN_SCOPE + "adaptive_model/")
DQN_TARGET = DQN_SCOPE + "target_q_func/"


def dqn_tower(scope: str, width: int, layers: Sequence[int], outputs: int, layer_norm: bool,
              reads_input: bool = False) -> Layout:
    """fully_connected layers (weights, biases), each hidden one followed by its LayerNorm, then the output."""
    layout: Layout = []
    for index, size in enumerate(list(layers) + [outputs]):
        layout += dense(scope + numbered_scope(CONTRIB_DENSE_STEM, index), width, size, CONTRIB_DENSE_LEAVES,
                        reads_input and index == 0)
        if layer_norm and index < len(layers):
            layout += layer_norm_parameters(scope + numbered_scope(LAYER_NORM_STEM, index), size)
        width = size
    return layout


def dqn_q_network(observation_space: Space, n_actions: int, layers: Sequence[int], layer_norm: bool, dueling: bool,
                  cnn_padding: Optional[str] = None) -> Layout:
    """`deepq/model/`: the `action_value` tower (nature_cnn then the scores, or the hidden layers then the
    scores), then, dueling, the `state_value` tower (the same hidden layers on the same features, one output)."""
    features, width = _features(DQN_ACTION_SCOPE, observation_space, cnn_padding)
    mlp = cnn_padding is None
    layout = features + dqn_tower(DQN_ACTION_SCOPE, width, layers if mlp else [], n_actions, layer_norm, mlp)
    if dueling:
        layout += dqn_tower(DQN_STATE_SCOPE, width, layers, 1, layer_norm, mlp)
    return layout


def dqn_layout(observation_space: Space, n_actions: int, layers: Sequence[int], layer_norm: bool, dueling: bool,
               cnn_padding: Optional[str] = None, param_noise: bool = False) -> Layout:
    """`get_parameter_list()` of DQN: eps, the Q network, its parameter-noise copies, the target network."""
    network = dqn_q_network(observation_space, n_actions, layers, layer_norm, dueling, cnn_padding)
    layout = [Parameter(DQN_EPSILON, (), SCALAR)] + network
    for copy in (DQN_NOISE_COPIES if param_noise else ()) + (DQN_TARGET,):
        layout += [parameter._replace(name=copy + parameter.name[len(DQN_SCOPE):]) for parameter in network]
    return layout


# -- SAC, TD3, DDPG (sac/policies.py, td3/policies.py, ddpg/policies.py; common/tf_layers.py mlp) ----------------
OFF_POLICY_SCOPE = "model/"
#: the target networks' scope: SAC's and TD3's critics, DDPG's actor and critic
OFF_POLICY_TARGET = "target/"
ACTOR = "pi"
#: SAC's and TD3's critics live under `values_fn/`: the state value `vf` and the two Q functions
CRITICS, STATE_VALUE, Q_FUNCTIONS = "values_fn", "vf", ("qf1", "qf2")
#: SAC's actor heads: the Gaussian's mean and its log-std; TD3's actor has the first only
SAC_MEAN, SAC_LOG_STD = "dense", "dense_1"
#: DDPG's actor head (named as its scope) and critic (`qf`, head `qf_output`)
DDPG_ACTOR_HEAD, DDPG_CRITIC, DDPG_CRITIC_HEAD = "pi", "qf", "qf_output"
#: SAC's learned entropy coefficient (ent_coef "auto...")
SAC_LOG_ENTROPY = "model/log_ent_coef:0"
#: DDPG's parameter-noise actors
DDPG_NOISE_ACTORS = ("noise/", "noise_adapt/")
#: DDPG's RunningMeanStd statistics of observations and returns, and their leaves
DDPG_OBSERVATION_STATISTICS, DDPG_RETURN_STATISTICS = "input/obs_rms/", "input/ret_rms/"
RUNNING_STATISTICS_LEAVES = ("runningsum", "runningsumsq", "count")


#: the stem of `mlp`'s hidden layers: `fc0`, `fc1`, ...
OFF_POLICY_FC_STEM = "fc"


def off_policy_fc_scope(prefix: str, index: int) -> str:
    """`mlp`'s hidden layer `index` under `prefix` (ending in '/'): `fc{index}`."""
    return "{}{}{}".format(prefix, OFF_POLICY_FC_STEM, index)


def off_policy_mlp(prefix: str, width: int, layers: Sequence[int], layer_norm: bool, heads: Sequence[Tuple[str, int]],
                   action_after_first: int = 0, reads_input: bool = True) -> Layout:
    """`mlp` under `prefix`: `fc{i}` (kernel, bias), each followed by its contrib LayerNorm, then the dense
    heads on the last hidden layer. DDPG's critic concatenates the action after the first layer."""
    layout: Layout = []
    for index, size in enumerate(layers):
        layout += dense(off_policy_fc_scope(prefix, index), width, size, KERAS_DENSE_LEAVES,
                        reads_input and index == 0)
        if layer_norm:
            layout += layer_norm_parameters(prefix + numbered_scope(LAYER_NORM_STEM, index), size)
        width = size + (action_after_first if index == 0 else 0)
    for head, size in heads:
        layout += dense(prefix + head, width, size, KERAS_DENSE_LEAVES)
    return layout


def _tower(prefix: str, observation_space: Space, cnn_padding: Optional[str], layers: Sequence[int],
           layer_norm: bool, heads: Sequence[Tuple[str, int]], extra_inputs: int = 0,
           action_after_first: int = 0) -> Layout:
    features, width = _features(prefix, observation_space, cnn_padding)
    return features + off_policy_mlp(prefix, width + extra_inputs, layers, layer_norm, heads, action_after_first,
                                     reads_input=cnn_padding is None)


def _critics(prefix: str, observation_space: Space, actions: int, layers: Sequence[int], layer_norm: bool,
             which: Sequence[str], cnn_padding: Optional[str]) -> Layout:
    """SAC/TD3 `make_critics` under `prefix`: the shared features, then `vf` on them and `qf1`/`qf2` on
    [features, action]."""
    layout, width = _features(prefix, observation_space, cnn_padding)
    for critic in which:
        inputs = width if critic == STATE_VALUE else width + actions
        layout += off_policy_mlp(prefix + critic + "/", inputs, layers, layer_norm, [(critic, 1)],
                                 reads_input=cnn_padding is None)
    return layout


def sac_layout(observation_space: Space, actions: int, layers: Sequence[int], layer_norm: bool,
               learned_entropy: bool = False, cnn_padding: Optional[str] = None) -> Layout:
    """`get_parameter_list()` of SAC: the actor `model/pi` (mean `dense`, log-std `dense_1`), the critics
    `model/values_fn/{vf,qf1,qf2}`, the learned `log_ent_coef` (ent_coef "auto..."), the target `vf`."""
    actor = OFF_POLICY_SCOPE + ACTOR + "/"
    layout = _tower(actor, observation_space, cnn_padding, layers, layer_norm, [(SAC_MEAN, actions),
                                                                                  (SAC_LOG_STD, actions)])
    layout += _critics(OFF_POLICY_SCOPE + CRITICS + "/", observation_space, actions, layers, layer_norm,
                       (STATE_VALUE,) + Q_FUNCTIONS, cnn_padding)
    if learned_entropy:
        layout.append(Parameter(SAC_LOG_ENTROPY, (), SCALAR))
    return layout + _critics(OFF_POLICY_TARGET + CRITICS + "/", observation_space, actions, layers, layer_norm,
                             (STATE_VALUE,), cnn_padding)


def td3_layout(observation_space: Space, actions: int, layers: Sequence[int], layer_norm: bool,
               cnn_padding: Optional[str] = None) -> Layout:
    """`get_parameter_list()` of TD3: the actor `pi` (tanh `dense`) and the critics `values_fn/{qf1,qf2}`, under
    `model/` then `target/`."""
    layout: Layout = []
    for scope in (OFF_POLICY_SCOPE, OFF_POLICY_TARGET):
        layout += _tower(scope + ACTOR + "/", observation_space, cnn_padding, layers, layer_norm,
                         [(SAC_MEAN, actions)])
        layout += _critics(scope + CRITICS + "/", observation_space, actions, layers, layer_norm, Q_FUNCTIONS,
                           cnn_padding)
    return layout


def ddpg_layout(observation_space: Space, actions: int, layers: Sequence[int], layer_norm: bool,
                param_noise: bool = False, normalize_observations: bool = False, normalize_returns: bool = False,
                cnn_padding: Optional[str] = None) -> Layout:
    """`get_parameter_list()` of DDPG: `model/{pi,qf}`, the parameter-noise actors `noise/pi` and `noise_adapt/pi`
    (param_noise), `target/{pi,qf}`, then the float64 running statistics `input/obs_rms/*` and `input/ret_rms/*`
    when observations or returns are normalized."""
    actor = _tower(ACTOR + "/", observation_space, cnn_padding, layers, layer_norm, [(DDPG_ACTOR_HEAD, actions)])
    critic = _tower(DDPG_CRITIC + "/", observation_space, cnn_padding, layers, layer_norm, [(DDPG_CRITIC_HEAD, 1)],
                    action_after_first=actions)
    layout = [parameter._replace(name=OFF_POLICY_SCOPE + parameter.name) for parameter in actor + critic]
    if param_noise:
        layout += [parameter._replace(name=scope + parameter.name) for scope in DDPG_NOISE_ACTORS
                   for parameter in actor]
    layout += [parameter._replace(name=OFF_POLICY_TARGET + parameter.name) for parameter in actor + critic]
    for prefix, shape, normalized in ((DDPG_OBSERVATION_STATISTICS, tuple(observation_space.shape),
                                       normalize_observations), (DDPG_RETURN_STATISTICS, (), normalize_returns)):
        if normalized:
            layout += running_statistics(prefix, shape)
    return layout


def running_statistics(prefix: str, shape: Shape) -> Layout:
    """RunningMeanStd's float64 `runningsum`, `runningsumsq` [shape] and `count` [] under `prefix`."""
    total, squares, count = (prefix + leaf + ":0" for leaf in RUNNING_STATISTICS_LEAVES)
    return [Parameter(total, shape, STATISTIC), Parameter(squares, shape, STATISTIC), Parameter(count, (), STATISTIC)]


# -- the graph's tensors -----------------------------------------------------------------------------------------
def first_hidden_layer_output(parameters: Collection[str]) -> Optional[str]:
    """The TF tensor the first hidden layer's activation reads, from the parameter names. SB2's `linear`
    (`model/*_fc{i}/w:0`) ends in `add:0`; a `tf.contrib.layers.fully_connected` layer
    (`.../model/.../fully_connected{_i}/weights:0`, DQN) that another one follows in its scope is hidden, and ends
    in `BiasAdd:0`, or in its `LayerNorm{_i}` when there is one. None: no hidden layer."""
    first = next((name for name in parameters if name.startswith(ACTOR_CRITIC_SCOPE) and "_fc" in name
                  and name.endswith("/w:0")), None)
    if first is not None:
        return first[: -len("/w:0")] + "/add:0"
    weights, _ = CONTRIB_DENSE_LEAVES
    pattern = re.compile(r"(.*model/.*){}(_\d+)?/{}:0$".format(CONTRIB_DENSE_STEM, weights))
    for name in parameters:
        match = pattern.match(name)
        if match is None:
            continue
        scope, index = match.group(1), int((match.group(2) or "_0")[1:])
        if variable(scope + numbered_scope(CONTRIB_DENSE_STEM, index + 1), weights) not in parameters:
            continue  # the output layer of its tower
        norm = scope + numbered_scope(LAYER_NORM_STEM, index)
        if variable(norm, LAYER_NORM_LEAVES[1]) in parameters:
            return norm + "/batchnorm/add_1:0"
        return name[: -len(weights + ":0")] + "BiasAdd:0"
    return None
