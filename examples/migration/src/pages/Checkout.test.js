import { mount } from 'enzyme';
import Checkout from './Checkout';

it('shows the total', () => {
  expect(mount(<Checkout items={[{ price: 2 }]} />).find('.total').text()).toBe('2');
});
