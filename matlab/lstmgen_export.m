function lstmgen_export(net, filename)
%LSTMGEN_EXPORT  Write a trained LSTM network to a .mat file that lstmgen reads.
%   lstmgen_export(net, 'model.mat') takes a SeriesNetwork, DAGNetwork or dlnetwork whose
%   layers form one chain (sequenceInputLayer, lstmLayer, fullyConnectedLayer, reluLayer,
%   tanhLayer, sigmoidLayer, softmaxLayer, dropoutLayer, and output layers, which are
%   skipped) and saves a cell array LAYERS in MATLAB v7 format: one struct per layer with
%   field Type and the layer's own property names and shapes:
%     sequenceInput   InputSize, Normalization, Mean, StandardDeviation
%     lstm            InputWeights (4H x D), RecurrentWeights (4H x H), Bias (4H x 1),
%                     OutputMode, StateActivationFunction, GateActivationFunction
%     fullyConnected  Weights (O x I), Bias (O x 1)
%   Then, outside MATLAB:  lstmgen generate model.mat --target c --name net --out build/
%
%   Weights are saved as single, exactly as the network holds them (dlarray values are
%   extracted with extractdata). The state the network last saw (net.State) is NOT saved:
%   lstmgen's code starts from zero, as predict does.

layers_in = net.Layers;
layers = {};
for k = 1:numel(layers_in)
    if iscell(layers_in)
        L = layers_in{k};
    else
        L = layers_in(k);
    end
    s = struct('Type', '', 'Name', L.Name);
    kind = layer_kind(L);
    switch kind
        case 'sequenceInput'
            s.Type = kind;
            s.InputSize = double(L.InputSize);
            s.Normalization = char(L.Normalization);
            s.Mean = plain(L.Mean);
            s.StandardDeviation = plain(L.StandardDeviation);
        case 'lstm'
            s.Type = kind;
            s.InputWeights = plain(L.InputWeights);
            s.RecurrentWeights = plain(L.RecurrentWeights);
            s.Bias = plain(L.Bias);
            s.OutputMode = char(L.OutputMode);
            s.StateActivationFunction = char(L.StateActivationFunction);
            s.GateActivationFunction = char(L.GateActivationFunction);
        case 'fullyConnected'
            s.Type = kind;
            s.Weights = plain(L.Weights);
            s.Bias = plain(L.Bias);
        case {'relu', 'tanh', 'sigmoid', 'softmax', 'dropout'}
            s.Type = kind;
        case 'output'
            continue;  % regression/classification output layers compute nothing at inference
        otherwise
            error('lstmgen_export:unsupported', ...
                  'layer %d ''%s'' of class %s is not supported by lstmgen', k, L.Name, class(L));
    end
    layers{end + 1} = s; %#ok<AGROW> export runs once, on the host
end
save(filename, 'layers', '-v7');
end

function kind = layer_kind(L)
% The lstmgen Type of a Deep Learning Toolbox layer object, from its class name.
name = class(L);
dot = find(name == '.', 1, 'last');
if ~isempty(dot)
    name = name(dot + 1:end);
end
switch name
    case 'SequenceInputLayer',          kind = 'sequenceInput';
    case 'LSTMLayer',                   kind = 'lstm';
    case 'FullyConnectedLayer',         kind = 'fullyConnected';
    case 'ReLULayer',                   kind = 'relu';
    case 'TanhLayer',                   kind = 'tanh';
    case 'SigmoidLayer',                kind = 'sigmoid';
    case 'SoftmaxLayer',                kind = 'softmax';
    case 'DropoutLayer',                kind = 'dropout';
    case {'RegressionOutputLayer', 'ClassificationOutputLayer'}
        kind = 'output';
    otherwise,                          kind = name;
end
end

function v = plain(x)
% A plain single matrix from a numeric array or dlarray ([] stays []).
if isa(x, 'dlarray')
    x = extractdata(x);
end
if ischar(x) || isstring(x) || isempty(x)
    v = [];   % e.g. Mean = [] when Normalization is 'none'
else
    v = single(x);
end
end
