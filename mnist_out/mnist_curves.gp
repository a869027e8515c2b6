# Training curves written by tapegrad::train::save_curves. Redraw with: gnuplot "mnist_out/mnist_curves.gp"
set datafile separator ','
set datafile missing 'nan'
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 1200,450 font ',10'
} else {
  set terminal png size 1200,450
}
set output '/work/main/mnist_out/mnist_curves.png'
set termoption noenhanced
set grid
set xlabel 'epoch'
set multiplot layout 1,2 title 'MNIST MLP'
set title 'loss'
set key top right
plot '/work/main/mnist_out/mnist_curves.csv' skip 1 using 1:2 with linespoints pointsize 0.6 title 'train_loss', \
     '' skip 1 using 1:3 with linespoints pointsize 0.6 title 'val_loss'
set title 'accuracy'
set key bottom right
plot '/work/main/mnist_out/mnist_curves.csv' skip 1 using 1:4 with linespoints pointsize 0.6 title 'train_acc', \
     '' skip 1 using 1:5 with linespoints pointsize 0.6 title 'val_acc'
unset multiplot
set output
